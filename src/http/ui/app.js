// Placeholder: the console script is written on the http-ui branch.

//! The console's static files, compiled into the binary so that an installation is one file.
//!
//! The console's authors own this directory (`index.html`, `app.js`, `app.css`); the server only
//! calls `asset`. Names are matched exactly against this table, so a request path can never reach
//! the file system.

/// The content type and bytes of console file `path` (`index.html`, `app.js`, ...).
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "index.html" => Some(("text/html; charset=utf-8", include_bytes!("index.html"))),
        "app.js" => Some(("text/javascript; charset=utf-8", include_bytes!("app.js"))),
        "app.css" => Some(("text/css; charset=utf-8", include_bytes!("app.css"))),
        _ => None,
    }
}

// A mail client that behaves like an issue tracker (TrackStudio) talking to its bundled mail
// server through Jakarta Mail: notifications go out over SMTP without AUTH, and the task inbox is
// polled over POP3 (USER/PASS with the full address, RETR each message, DELE, QUIT).
//
//   java TrackerClient send <host> <port> <from> <to> <subject> <bodyfile>
//   java TrackerClient poll <host> <port> <user> <password>
//
// `poll` prints, for each message, oldest first:
//   MESSAGE <n> <subject> <size>
//   <the content text, as Jakarta Mail decodes it>
//   END MESSAGE <n>
// and then `POLLED <count>`. Output is UTF-8 regardless of the locale.

import jakarta.mail.Flags;
import jakarta.mail.Folder;
import jakarta.mail.Message;
import jakarta.mail.Session;
import jakarta.mail.Store;
import jakarta.mail.Transport;
import jakarta.mail.internet.InternetAddress;
import jakarta.mail.internet.MimeMessage;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Date;
import java.util.Properties;

public class TrackerClient {
    public static void main(String[] args) throws Exception {
        PrintStream out =
                new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        if (args.length == 7 && args[0].equals("send")) {
            send(args[1], args[2], args[3], args[4], args[5], args[6]);
            out.println("SENT " + args[5]);
        } else if (args.length == 5 && args[0].equals("poll")) {
            poll(out, args[1], args[2], args[3], args[4]);
        } else {
            System.err.println(
                    "usage: TrackerClient send <host> <port> <from> <to> <subject> <bodyfile>\n"
                            + "       TrackerClient poll <host> <port> <user> <password>");
            System.exit(2);
        }
    }

    static Properties base(String host, String port) {
        Properties props = new Properties();
        props.put("mail.smtp.connectiontimeout", "10000");
        props.put("mail.smtp.timeout", "10000");
        props.put("mail.pop3.connectiontimeout", "10000");
        props.put("mail.pop3.timeout", "10000");
        props.put("mail.debug", System.getProperty("tracker.debug", "false"));
        return props;
    }

    static void send(String host, String port, String from, String to, String subject,
            String bodyFile) throws Exception {
        Properties props = base(host, port);
        props.put("mail.smtp.host", host);
        props.put("mail.smtp.port", port);
        props.put("mail.smtp.auth", "false");
        // Send UTF-8 text as 8-bit when the server offers 8BITMIME, as a tracker configured for
        // national-language notifications does.
        props.put("mail.smtp.allow8bitmime", "true");
        Session session = Session.getInstance(props);
        MimeMessage msg = new MimeMessage(session);
        msg.setFrom(new InternetAddress(from));
        msg.setRecipients(Message.RecipientType.TO, InternetAddress.parse(to));
        msg.setSubject(subject, "UTF-8");
        msg.setSentDate(new Date());
        String body = new String(Files.readAllBytes(Paths.get(bodyFile)), StandardCharsets.UTF_8);
        msg.setText(body, "UTF-8");
        Transport.send(msg);
    }

    static void poll(PrintStream out, String host, String port, String user, String password)
            throws Exception {
        Session session = Session.getInstance(base(host, port));
        Store store = session.getStore("pop3");
        store.connect(host, Integer.parseInt(port), user, password);
        Folder folder = store.getFolder("INBOX");
        folder.open(Folder.READ_WRITE);
        Message[] messages = folder.getMessages();
        for (Message m : messages) {
            out.println("MESSAGE " + m.getMessageNumber() + " " + m.getSubject() + " " + m.getSize());
            Object content = m.getContent();
            out.print(content instanceof String ? (String) content : content.toString());
            out.println();
            out.println("END MESSAGE " + m.getMessageNumber());
            m.setFlag(Flags.Flag.DELETED, true);
        }
        folder.close(true);
        store.close();
        out.println("POLLED " + messages.length);
    }
}

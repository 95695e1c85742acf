//! Where lines go: a file (appended, created with its parent directories, reopened on
//! SIGHUP), standard output, nowhere, or a socket. Sinks do blocking I/O; each runs on its
//! device's writer thread, never on the caller's.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{FileMode, SocketType, Target};
use crate::error::{Error, Result};

/// A destination for audit lines.
pub(crate) trait Sink: Send + 'static {
    /// Write one whole line (prefix, JSON and newline).
    fn write_line(&mut self, line: &[u8]) -> io::Result<()>;

    /// Whether several lines may go out in one `write_line` call (one write for a batch).
    /// Datagram sockets and test sinks that count calls say no (the default).
    fn accepts_batches(&self) -> bool {
        false
    }

    /// Whether a caller may write its line itself when the device is idle, instead of
    /// handing it to the device's writer thread: a destination where a write completes
    /// without waiting on anyone else (a file; not a socket or a pipe, whose reader may stop
    /// reading). No by default.
    fn writes_inline(&self) -> bool {
        false
    }

    /// Close and reopen the destination (log rotation); the default does nothing.
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Build the sink for a device. A file is opened right away, so a path that cannot be written
/// fails the configuration instead of the first request (as OpenBao's sanity check does).
pub(crate) fn open(target: &Target) -> Result<Box<dyn Sink>> {
    Ok(match target {
        Target::File { path, mode } => Box::new(FileSink::open(path, *mode)?),
        Target::Stdout => Box::new(StdoutSink),
        Target::Discard => Box::new(DiscardSink),
        Target::Socket {
            address,
            socket_type,
            write_timeout,
        } => Box::new(SocketSink::new(address, *socket_type, *write_timeout)?),
    })
}

/// Appends to a file.
pub(crate) struct FileSink {
    path: PathBuf,
    /// Permission bits set on the file after each open.
    mode: u32,
    file: Option<File>,
    /// Whether the open file is a regular file (not a FIFO or a device).
    regular: bool,
}

impl FileSink {
    pub(crate) fn open(path: &Path, mode: FileMode) -> Result<FileSink> {
        let sanity = |e: io::Error| {
            Error::invalid_input(format!(
                "sanity check failed; unable to open \"{}\" for writing: {e}",
                path.display()
            ))
        };
        let mode = match mode {
            FileMode::Set(m) => m,
            FileMode::Keep => existing_mode(path).map_err(sanity)?,
        };
        let mut sink = FileSink {
            path: path.to_path_buf(),
            mode,
            file: None,
            regular: false,
        };
        sink.ensure_open().map_err(sanity)?;
        Ok(sink)
    }

    fn ensure_open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_dirs(dir)?;
            }
            let mut opts = OpenOptions::new();
            opts.append(true).create(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(self.mode);
            }
            let file = opts.open(&self.path)?;
            self.regular = file.metadata()?.is_file();
            // The file may have existed with another mode; /dev/null cannot be changed.
            #[cfg(unix)]
            if self.path != Path::new("/dev/null") && self.regular {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
            }
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("audit file is not open"))
    }
}

impl Sink for FileSink {
    fn accepts_batches(&self) -> bool {
        true
    }

    /// A write to a regular file lands in the page cache; a FIFO's reader may stop reading.
    fn writes_inline(&self) -> bool {
        self.regular
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let first = self.ensure_open().and_then(|f| f.write_all(line));
        if first.is_ok() {
            return first;
        }
        // As OpenBao does: reopen once (the file may have been removed or rotated) and retry.
        self.file = None;
        self.ensure_open()?.write_all(line)
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.file = None;
        self.ensure_open().map(|_| ())
    }
}

#[cfg(unix)]
fn existing_mode(path: &Path) -> io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn existing_mode(path: &Path) -> io::Result<u32> {
    std::fs::metadata(path).map(|_| 0o600)
}

/// Parent directories: private to the owner (OpenBao reuses the file mode, which leaves a
/// directory without its search bit).
fn create_dirs(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Standard output.
pub(crate) struct StdoutSink;

impl Sink for StdoutSink {
    fn accepts_batches(&self) -> bool {
        true
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(line)?;
        out.flush()
    }
}

/// Formats and forgets (`file_path = "discard"`).
pub(crate) struct DiscardSink;

impl Sink for DiscardSink {
    fn accepts_batches(&self) -> bool {
        true
    }

    fn writes_inline(&self) -> bool {
        true
    }

    fn write_line(&mut self, _line: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

enum Conn {
    Tcp(TcpStream),
    Udp(UdpSocket),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Conn {
    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(line),
            Conn::Udp(s) => {
                let n = s.send(line)?;
                if n == line.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "datagram truncated",
                    ))
                }
            }
            #[cfg(unix)]
            Conn::Unix(s) => s.write_all(line),
        }
    }
}

/// Sends each line over a socket, connecting lazily (the collector may start after us) and
/// reconnecting once when a write fails, as OpenBao does. `write_timeout` bounds every connect
/// and write.
pub(crate) struct SocketSink {
    address: String,
    socket_type: SocketType,
    write_timeout: Option<Duration>,
    conn: Option<Conn>,
}

impl SocketSink {
    pub(crate) fn new(
        address: &str,
        socket_type: SocketType,
        write_timeout: Duration,
    ) -> Result<SocketSink> {
        #[cfg(not(unix))]
        if socket_type == SocketType::Unix {
            return Err(Error::invalid_input(
                "unix sockets are not supported on this platform",
            ));
        }
        Ok(SocketSink {
            address: address.to_string(),
            socket_type,
            // Zero would make every write time out at once; treat it as "no timeout".
            write_timeout: Some(write_timeout).filter(|d| !d.is_zero()),
            conn: None,
        })
    }

    fn connect(&self) -> io::Result<Conn> {
        match self.socket_type {
            SocketType::Tcp => {
                let mut last = io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("cannot resolve `{}`", self.address),
                );
                for addr in self.address.to_socket_addrs()? {
                    let attempt = match self.write_timeout {
                        Some(t) => TcpStream::connect_timeout(&addr, t),
                        None => TcpStream::connect(addr),
                    };
                    match attempt {
                        Ok(s) => {
                            s.set_write_timeout(self.write_timeout)?;
                            s.set_nodelay(true)?;
                            return Ok(Conn::Tcp(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            SocketType::Udp => {
                let addr = self.address.to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::other(format!("cannot resolve `{}`", self.address))
                })?;
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(local)?;
                s.connect(addr)?;
                s.set_write_timeout(self.write_timeout)?;
                Ok(Conn::Udp(s))
            }
            #[cfg(unix)]
            SocketType::Unix => {
                let s = std::os::unix::net::UnixStream::connect(&self.address)?;
                s.set_write_timeout(self.write_timeout)?;
                Ok(Conn::Unix(s))
            }
            #[cfg(not(unix))]
            SocketType::Unix => Err(io::Error::other("unix sockets are not supported")),
        }
    }

    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        match self.conn.as_mut() {
            Some(c) => c.send(line),
            None => Err(io::Error::other("not connected")),
        }
    }
}

impl Sink for SocketSink {
    fn accepts_batches(&self) -> bool {
        // One datagram per line.
        self.socket_type != SocketType::Udp
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.send(line).is_ok() {
            return Ok(());
        }
        self.conn = None;
        self.send(line)
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.conn = None;
        self.conn = Some(self.connect()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[cfg(unix)]
    fn mode_of(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn open_builds_every_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut file = open(&Target::File {
            path: path.clone(),
            mode: FileMode::Set(0o600),
        })
        .unwrap();
        file.write_line(b"line\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line\n");
        open(&Target::Discard)
            .unwrap()
            .write_line(b"gone\n")
            .unwrap();
        // Nothing visible: an empty line is zero bytes.
        open(&Target::Stdout).unwrap().write_line(b"").unwrap();
        // Sockets connect lazily: a collector that is not up yet does not fail the config.
        let mut socket = open(&Target::Socket {
            address: "127.0.0.1:1".into(),
            socket_type: SocketType::Tcp,
            write_timeout: Duration::from_millis(200),
        })
        .unwrap();
        assert!(socket.write_line(b"x\n").is_err());
    }

    #[test]
    fn file_is_appended_and_parent_dirs_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/audit.log");
        let mut sink = FileSink::open(&path, FileMode::Set(0o600)).unwrap();
        sink.write_line(b"one\n").unwrap();
        let mut again = FileSink::open(&path, FileMode::Set(0o600)).unwrap();
        again.write_line(b"two\n").unwrap();
        sink.write_line(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
        #[cfg(unix)]
        {
            assert_eq!(mode_of(&path), 0o600);
            assert_eq!(mode_of(&dir.path().join("a/b")), 0o700);
        }
    }

    #[cfg(unix)]
    #[test]
    fn file_mode_is_applied_and_zero_keeps_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        FileSink::open(&path, FileMode::Keep).unwrap();
        assert_eq!(mode_of(&path), 0o640);
        FileSink::open(&path, FileMode::Set(0o644)).unwrap();
        assert_eq!(mode_of(&path), 0o644);
        let missing = dir.path().join("missing.log");
        let err = FileSink::open(&missing, FileMode::Keep).err().unwrap();
        assert!(
            err.to_string().starts_with(&format!(
                "sanity check failed; unable to open \"{}\" for writing: ",
                missing.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn unwritable_path_fails_the_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        // A regular file where a directory is needed.
        let err = FileSink::open(&file.join("audit.log"), FileMode::Set(0o600))
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("sanity check failed"), "{err}");
    }

    #[test]
    fn reopen_after_rotation_writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let rotated = dir.path().join("audit.log.1");
        let mut sink = FileSink::open(&path, FileMode::Set(0o600)).unwrap();
        sink.write_line(b"old\n").unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        sink.write_line(b"still old\n").unwrap();
        sink.reopen().unwrap();
        sink.write_line(b"new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "old\nstill old\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }

    #[test]
    fn tcp_socket_receives_lines_and_reconnects() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut sink = SocketSink::new(&addr, SocketType::Tcp, Duration::from_secs(2)).unwrap();
        sink.write_line(b"{\"a\":1}\n").unwrap();
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn);
        let mut got = String::new();
        reader.read_line(&mut got).unwrap();
        assert_eq!(got, "{\"a\":1}\n");
        // The collector restarts: the next line goes over a new connection.
        drop(reader);
        sink.reopen().unwrap();
        sink.write_line(b"{\"b\":2}\n").unwrap();
        let (conn, _) = listener.accept().unwrap();
        let mut got = String::new();
        BufReader::new(conn).read_line(&mut got).unwrap();
        assert_eq!(got, "{\"b\":2}\n");
    }

    #[test]
    fn udp_socket_sends_one_datagram_per_line() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let mut sink = SocketSink::new(&addr, SocketType::Udp, Duration::from_secs(2)).unwrap();
        sink.write_line(b"{\"a\":1}\n").unwrap();
        sink.write_line(b"{\"b\":2}\n").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"{\"a\":1}\n");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"{\"b\":2}\n");
    }

    #[cfg(unix)]
    #[test]
    fn unix_socket_receives_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut sink = SocketSink::new(
            path.to_str().unwrap(),
            SocketType::Unix,
            Duration::from_secs(2),
        )
        .unwrap();
        sink.write_line(b"{\"a\":1}\n").unwrap();
        let (conn, _) = listener.accept().unwrap();
        let mut got = String::new();
        BufReader::new(conn).read_line(&mut got).unwrap();
        assert_eq!(got, "{\"a\":1}\n");
    }

    #[test]
    fn unreachable_socket_fails_the_write() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut sink = SocketSink::new(
            &format!("127.0.0.1:{port}"),
            SocketType::Tcp,
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(sink.write_line(b"x\n").is_err());
    }
}

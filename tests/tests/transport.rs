//! Connections against the real binary over raw sockets: header and idle
//! timeouts, the connection cap under more half-open connections than the
//! server has file descriptors, and SIGTERM with requests still arriving.
//! Timing margins are wide on purpose (a shared two-core machine): each
//! test only tells "closed" from "still open after far longer".

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use verdict_e2e::{healthy_request, Options, Server};

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(addr(s)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c
}

/// Read until the server closes the connection: `Ok(bytes)` when it did
/// (EOF or reset) within the read timeout, `Err` when it was still open.
fn until_closed(c: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(out),
            Err(e) => return Err(format!("still open after the read timeout: {e}")),
        }
    }
}

/// One keep-alive GET; the answer's status line.
fn get(c: &mut TcpStream, path: &str) -> String {
    write!(c, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Complete once the headers and `Content-Length` bytes are in.
    loop {
        let n = c.read(&mut buf).expect("read an answer");
        assert!(n > 0, "closed before answering GET {path}");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            if body.len() >= len {
                return head.lines().next().unwrap().to_string();
            }
        }
    }
}

fn healthz(s: &Server) -> String {
    let mut c = connect(s);
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    get(&mut c, "/healthz")
}

#[test]
fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let s = Server::start_with(Options {
        config: Some("header_read_timeout_ms = 1000\nidle_timeout_ms = 600000\n".into()),
        ..Options::default()
    });
    let mut c = connect(&s);
    c.write_all(b"POST /v1/decisions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .unwrap();
    // Slowloris: one more header byte every 200 ms never completes the head.
    let mut writer = c.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            if writer.write_all(b"a").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let started = Instant::now();
    let answer = until_closed(&mut c);
    assert!(
        answer.is_ok(),
        "a head trickled for {:?} was not cut off: {answer:?}",
        started.elapsed()
    );
    drop(c);
    trickle.join().unwrap();
    assert_eq!(healthz(&s), "HTTP/1.1 200 OK");
}

#[test]
fn idle_connections_close_after_the_idle_timeout_and_not_at_the_header_timeout() {
    let s = Server::start_with(Options {
        config: Some("header_read_timeout_ms = 500\nidle_timeout_ms = 15000\n".into()),
        ..Options::default()
    });
    // Keep-alive: idle for 5× the header timeout between two requests is fine.
    let mut c = connect(&s);
    assert_eq!(get(&mut c, "/healthz"), "HTTP/1.1 200 OK");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&mut c, "/readyz"), "HTTP/1.1 200 OK");
    // Then, left idle, it is closed (the read timeout is 60 s).
    assert_eq!(until_closed(&mut c), Ok(Vec::new()));
    // The same for a connection that never sends a byte.
    let mut silent = connect(&s);
    assert_eq!(until_closed(&mut silent), Ok(Vec::new()));
}

#[test]
fn more_half_open_connections_than_file_descriptors_do_not_lock_out_healthz() {
    // The test process needs more than the server's 1,024 descriptors.
    verdict::http::listener::raise_open_files_limit().expect("read the open-files limit");
    let s = Server::start_with(Options {
        // Timeouts far away: only the cap can make room.
        config: Some("header_read_timeout_ms = 600000\nidle_timeout_ms = 600000\n".into()),
        open_files: Some(1024),
        capture_stderr: true,
        ..Options::default()
    });
    let mut open = Vec::new();
    for i in 0..1100 {
        let mut c = TcpStream::connect(addr(&s)).unwrap_or_else(|e| {
            panic!("connection {i}: {e} (is this process's `ulimit -n` > 1,200?)")
        });
        // Half of them with half a request head, half silent.
        if i % 2 == 0 {
            let _ = c.write_all(b"GET /healthz HTTP/1.1\r\n");
        }
        open.push(c);
    }
    assert_eq!(healthz(&s), "HTTP/1.1 200 OK");
    // And decisions still go through.
    let (st, body) = s.json("POST", "/v1/decisions", &healthy_request("api", "prod"));
    assert_eq!(st, 201, "{body}");
    let logs = s.stderr_lines().join("\n");
    assert!(
        logs.contains("`max_connections` lowered to 896 to fit the open-files limit of 1024"),
        "{logs}"
    );
    assert!(logs.contains("at the connection cap (896)"), "{logs}");
    drop(open);
}

#[test]
fn sigterm_with_requests_still_arriving_exits_within_the_shutdown_deadline() {
    let mut s = Server::start_with(Options {
        config: Some(
            "header_read_timeout_ms = 600000\nidle_timeout_ms = 600000\n\
             body_timeout_ms = 600000\nshutdown_timeout_ms = 5000\n"
                .into(),
        ),
        env: vec![("RUST_LOG".into(), "info".into())],
        capture_stderr: true,
        ..Options::default()
    });
    // Half a head: nothing in progress, closed at once.
    let mut half = connect(&s);
    half.write_all(b"POST /v1/decisions HTTP/1.1\r\nHost: loc")
        .unwrap();
    // A body that never completes: in progress, cut at the deadline.
    let mut stalled = connect(&s);
    stalled
        .write_all(
            b"POST /v1/decisions HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"deploy",
        )
        .unwrap();
    // A body that completes just after SIGTERM: answered, then closed.
    let body = healthy_request("api", "prod").to_string();
    let mut finishing = connect(&s);
    write!(
        finishing,
        "POST /v1/decisions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    // Let the server see all three before the signal.
    std::thread::sleep(Duration::from_millis(500));
    let pid = s.pid();
    let signalled = std::thread::spawn(move || {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
    });
    signalled.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    finishing.write_all(&body.as_bytes()[10..]).unwrap();
    let answer = until_closed(&mut finishing).expect("closed after its answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    assert!(until_closed(&mut half).is_ok());
    assert!(until_closed(&mut stalled).is_ok());
    // The harness waits 60 s for the exit (never, before the deadline).
    let status = s.terminate();
    assert!(status.success(), "{status}");
    let logs = s.stderr_lines().join("\n");
    assert!(
        logs.contains("closed 1 connection(s) with a half-sent request head"),
        "{logs}"
    );
    assert!(
        logs.contains(
            "shutdown deadline of 5000 ms passed: cut 1 connection(s) with a request in progress"
        ),
        "{logs}"
    );
}

#[test]
fn a_client_still_sending_a_refused_body_can_finish_and_read_the_answer() {
    let s = Server::start_with(Options {
        config: Some("max_body_bytes = 1024\n".into()),
        ..Options::default()
    });
    let mut c = connect(&s);
    write!(
        c,
        "POST /v1/decisions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        (1 << 20) + 2048
    )
    .unwrap();
    // Past the limit: the server answers 413 and closes its side.
    c.write_all(&[b' '; 2048]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Like most clients, finish sending before reading. Had the server
    // closed with these bytes unread, they would meet a reset.
    for chunk in 0..16 {
        c.write_all(&[b' '; 64 << 10])
            .unwrap_or_else(|e| panic!("sending chunk {chunk} after the answer: {e}"));
        std::thread::sleep(Duration::from_millis(5));
    }
    let answer = until_closed(&mut c).expect("closed after the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    assert!(answer.contains("max_body_bytes"), "{answer}");
}

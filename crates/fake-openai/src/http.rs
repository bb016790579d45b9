//! A minimal HTTP/1.1 request reader and response writer.
//!
//! Enough of RFC 9112 for a test server: one request at a time per
//! connection (keep-alive, no pipelining beyond sequential reads),
//! `Content-Length` and `chunked` request bodies, bounded header and body
//! sizes.

use std::io::{self, BufRead, Write};

/// Largest accepted request head (request line plus headers), in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest accepted request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// One parsed HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Request target as sent (path and optional query).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header fields in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded body bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asked to keep the connection open afterwards.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").map(str::to_ascii_lowercase);
        match connection.as_deref() {
            Some(v) if v.split(',').any(|t| t.trim() == "close") => false,
            Some(v) if v.split(',').any(|t| t.trim() == "keep-alive") => true,
            _ => self.version == "HTTP/1.1",
        }
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection before sending a request line.
    Closed,
    /// The bytes are not a valid HTTP/1.x request; answer 400 and close.
    Malformed(String),
    /// The head or body exceeds its limit; answer 413/431 and close.
    TooLarge(&'static str),
    /// A socket error.
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> Result<Option<String>, ReadError> {
    let mut buf = Vec::new();
    let n = io::Read::take(&mut *reader, (*budget as u64).saturating_add(1))
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(ReadError::TooLarge("request head"));
    }
    *budget -= n;
    if buf.last() != Some(&b'\n') {
        return Err(ReadError::Malformed("line not terminated".into()));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| ReadError::Malformed("non-UTF-8 request head".into()))
}

/// Reads one request from `reader`.
///
/// # Errors
/// [`ReadError::Closed`] when the connection ended cleanly before a request,
/// otherwise the reason the request is unusable.
pub fn read_request(reader: &mut impl BufRead) -> Result<Request, ReadError> {
    let mut budget = MAX_HEAD_BYTES;
    // Tolerate empty lines before the request line (RFC 9112 §2.2).
    let line = loop {
        match read_line(reader, &mut budget)? {
            None => return Err(ReadError::Closed),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed(format!("bad request line `{line}`")));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ReadError::Malformed(format!(
            "unsupported version `{version}`"
        )));
    }
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(reader, &mut budget)? else {
            return Err(ReadError::Malformed(
                "connection closed inside headers".into(),
            ));
        };
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Malformed(format!("bad header line `{line}`")));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ReadError::Malformed(format!("bad header name `{name}`")));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut request = Request {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
        body: Vec::new(),
    };
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ReadError::Malformed(format!("bad Content-Length `{len}`")))?;
        if len > MAX_BODY_BYTES {
            return Err(ReadError::TooLarge("request body"));
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(request)
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut budget = 1024;
        let Some(line) = read_line(reader, &mut budget)? else {
            return Err(ReadError::Malformed(
                "connection closed inside chunked body".into(),
            ));
        };
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::Malformed(format!("bad chunk size `{size_text}`")))?;
        if size == 0 {
            // Trailer section, ended by an empty line.
            let mut budget = MAX_HEAD_BYTES;
            loop {
                match read_line(reader, &mut budget)? {
                    None => {
                        return Err(ReadError::Malformed(
                            "connection closed inside trailers".into(),
                        ));
                    }
                    Some(l) if l.is_empty() => return Ok(body),
                    Some(_) => {}
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(ReadError::TooLarge("request body"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(ReadError::Malformed("chunk not followed by CRLF".into()));
        }
    }
}

/// Reason phrase of common status codes.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The status line and headers of a response with a body of `body_len`
/// bytes (`Content-Length` is always sent).
pub fn response_head(
    status: u16,
    extra: &[(String, String)],
    body_len: usize,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    head.push_str("Content-Type: application/json\r\n");
    head.push_str(&format!("Content-Length: {body_len}\r\n"));
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n"
    } else {
        "Connection: close\r\n"
    });
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Writes a complete response.
///
/// # Errors
/// Socket errors.
pub fn write_response(
    out: &mut impl Write,
    status: u16,
    extra: &[(String, String)],
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    out.write_all(&response_head(status, extra, body.len(), keep_alive))?;
    out.write_all(body)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_length_request() {
        let raw = b"POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET";
        let mut reader = io::BufReader::new(&raw[..]);
        let req = read_request(&mut reader).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/v1/x");
        assert_eq!(req.header("HOST"), Some("a"));
        assert_eq!(req.body, b"hello");
        assert!(req.keep_alive());
    }

    #[test]
    fn reads_chunked_request() {
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let req = read_request(&mut io::BufReader::new(&raw[..])).unwrap();
        assert_eq!(req.body, b"abcde");
        assert!(!req.keep_alive());
    }

    #[test]
    fn rejects_garbage_and_reports_clean_close() {
        let raw = b"NOT HTTP\r\n\r\n";
        assert!(matches!(
            read_request(&mut io::BufReader::new(&raw[..])),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            read_request(&mut io::BufReader::new(&b""[..])),
            Err(ReadError::Closed)
        ));
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n";
        assert!(matches!(
            read_request(&mut io::BufReader::new(&raw[..])),
            Err(ReadError::TooLarge(_))
        ));
    }

    #[test]
    fn response_has_length_and_connection() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            429,
            &[("Retry-After".into(), "1".into())],
            b"{}",
            false,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains("Retry-After: 1\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
    }
}

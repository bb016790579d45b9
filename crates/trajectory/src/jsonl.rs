//! Streaming JSON Lines I/O for trajectories.
//!
//! [`JsonlReader`] yields one result per non-blank line: a bad line (broken
//! JSON, unknown field or role, invalid trajectory, a truncated last line)
//! becomes a [`RecordError`] carrying its 1-based line number, and reading
//! goes on with the next line, so no good record is lost around a bad one.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use thiserror::Error;

use crate::error::TrajectoryError;
use crate::types::Trajectory;

/// What went wrong with one line.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecordErrorKind {
    /// Reading the underlying stream failed; reading stops after this error.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
    /// The line is not a JSON trajectory (syntax, missing or unknown field,
    /// wrong type, unknown role, invalid UTF-8).
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The line parses but the trajectory is invalid.
    #[error("{0}")]
    Invalid(#[from] TrajectoryError),
}

/// A bad line of a JSONL stream.
#[derive(Debug, Error)]
#[error("line {line}: {kind}")]
pub struct RecordError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    #[source]
    pub kind: RecordErrorKind,
}

/// Streams trajectories from JSON Lines; see the module documentation.
pub struct JsonlReader<R> {
    reader: R,
    line: usize,
    buf: Vec<u8>,
    done: bool,
    validate: bool,
}

impl<R: BufRead> JsonlReader<R> {
    /// Reads from any buffered reader; records are validated with
    /// [`Trajectory::validate`].
    pub fn new(reader: R) -> Self {
        JsonlReader {
            reader,
            line: 0,
            buf: Vec::new(),
            done: false,
            validate: true,
        }
    }

    /// Turns validation of parsed records on or off (on by default).
    pub fn validating(mut self, on: bool) -> Self {
        self.validate = on;
        self
    }

    /// Number of lines consumed so far.
    pub fn lines_read(&self) -> usize {
        self.line
    }
}

impl JsonlReader<BufReader<File>> {
    /// Opens a file for streaming.
    ///
    /// # Errors
    /// The [`io::Error`] of opening the file.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::new(BufReader::new(File::open(path)?)))
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = Result<Trajectory, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    self.line += 1;
                    return Some(Err(RecordError {
                        line: self.line,
                        kind: e.into(),
                    }));
                }
            }
            self.line += 1;
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.line;
            let parsed = serde_json::from_slice::<Trajectory>(&self.buf)
                .map_err(|e| RecordError {
                    line,
                    kind: e.into(),
                })
                .and_then(|t| {
                    if self.validate {
                        t.validate().map_err(|e| RecordError {
                            line,
                            kind: e.into(),
                        })?;
                    }
                    Ok(t)
                });
            return Some(parsed);
        }
    }
}

/// How [`JsonlReport::read`] treats bad lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Collect bad lines as errors and keep reading.
    #[default]
    Lenient,
    /// Stop at the first bad line.
    Strict,
}

/// The outcome of reading a whole JSONL file.
#[derive(Debug, Default)]
pub struct JsonlReport {
    /// The good records, in file order.
    pub trajectories: Vec<Trajectory>,
    /// The bad lines, in file order.
    pub errors: Vec<RecordError>,
    /// Lines consumed (including blank lines).
    pub lines: usize,
}

impl JsonlReport {
    /// Reads every record of a stream.
    ///
    /// # Errors
    /// In [`ReadMode::Strict`], the first bad line. In lenient mode bad lines
    /// are collected in [`JsonlReport::errors`] and this never fails.
    pub fn read<R: BufRead>(reader: R, mode: ReadMode) -> Result<Self, RecordError> {
        let mut it = JsonlReader::new(reader);
        let mut report = JsonlReport::default();
        for rec in it.by_ref() {
            match rec {
                Ok(t) => report.trajectories.push(t),
                Err(e) if mode == ReadMode::Strict => return Err(e),
                Err(e) => report.errors.push(e),
            }
        }
        report.lines = it.lines_read();
        Ok(report)
    }

    /// Reads every record of a file; see [`JsonlReport::read`].
    ///
    /// # Errors
    /// Opening the file (reported as line 0), or as [`JsonlReport::read`].
    pub fn read_file(path: impl AsRef<Path>, mode: ReadMode) -> Result<Self, RecordError> {
        let file = File::open(path).map_err(|e| RecordError {
            line: 0,
            kind: e.into(),
        })?;
        Self::read(BufReader::new(file), mode)
    }
}

/// Writes trajectories as JSON Lines, one compact object per line.
pub struct JsonlWriter<W: Write> {
    out: W,
    written: usize,
}

impl<W: Write> JsonlWriter<W> {
    /// Wraps a writer (wrap files in a [`BufWriter`]).
    pub fn new(out: W) -> Self {
        JsonlWriter { out, written: 0 }
    }

    /// Writes one record and its newline.
    ///
    /// # Errors
    /// I/O errors of the underlying writer.
    pub fn write(&mut self, t: &Trajectory) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, t)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Number of records written.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    /// I/O errors of the final flush.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl JsonlWriter<BufWriter<File>> {
    /// Creates (or truncates) a file for writing.
    ///
    /// # Errors
    /// The [`io::Error`] of creating the file.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::new(BufWriter::new(File::create(path)?)))
    }
}

//! A small incremental parser for `text/event-stream` (server-sent events), fed with whatever
//! byte chunks the network delivers; lines and events may straddle chunk boundaries.

/// Longest line or event payload accepted, so a broken or hostile stream cannot exhaust memory.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when the event named none.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser (the subset of the WHATWG rules idlegrid needs: `event`, `data`,
/// comments, and all three line endings; `id` and `retry` are ignored).
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// A chunk ended in `\r`; a `\n` starting the next chunk belongs to that line ending.
    skip_lf: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the stream and returns the events it completed.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut events = Vec::new();
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.extend_line(&chunk[..pos])?;
            let ending = chunk[pos];
            chunk = &chunk[pos + 1..];
            if ending == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.process_line(&line)? {
                events.push(event);
            }
        }
        self.extend_line(chunk)?;
        Ok(events)
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.line.len() + bytes.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "event stream line longer than {MAX_EVENT_BYTES} bytes"
            ));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, String> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let line =
            std::str::from_utf8(line).map_err(|_| "event stream line is not UTF-8".to_string())?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    return Err(format!("event larger than {MAX_EVENT_BYTES} bytes"));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".to_string()),
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b": keep-alive\n\
        event: job\n\
        data: {\"a\":\n\
        data: 1}\n\
        \n\
        retry: 1000\r\n\
        event: job\r\n\
        data:{\"b\":2}\r\n\
        \r\n\
        data: plain\r\r\
        event: job\n\
        \n\
        event: job\n\
        data: unfinished\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                event: "job".into(),
                data: "{\"a\":\n1}".into(),
            },
            SseEvent {
                event: "job".into(),
                data: "{\"b\":2}".into(),
            },
            SseEvent {
                event: "message".into(),
                data: "plain".into(),
            },
        ]
    }

    #[test]
    fn parses_a_whole_stream() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(STREAM).unwrap(), expected());
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        for size in 1..STREAM.len() {
            let mut parser = SseParser::new();
            let mut events = Vec::new();
            for chunk in STREAM.chunks(size) {
                events.extend(parser.push(chunk).unwrap());
            }
            assert_eq!(events, expected(), "chunk size {size}");
        }
        // Every split point, including between `\r` and `\n`.
        for split in 0..STREAM.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&STREAM[..split]).unwrap();
            events.extend(parser.push(&STREAM[split..]).unwrap());
            assert_eq!(events, expected(), "split at {split}");
        }
    }

    #[test]
    fn oversized_lines_are_refused() {
        let mut parser = SseParser::new();
        let big = vec![b'x'; MAX_EVENT_BYTES / 2 + 1];
        parser.push(b"data: ").unwrap();
        parser.push(&big).unwrap();
        assert!(parser.push(&big).is_err());
    }
}

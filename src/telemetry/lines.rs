//! The serving commands' log writer: lines are appended to a shared buffer, and a
//! thread of its own writes the buffer out a few milliseconds after its first line.
//!
//! A queue with a writer thread that waits for each line (`tracing-appender`'s)
//! wakes that thread for nearly every line when the lines come one at a time, and
//! each wake-up is a futex call on the logging side, a context switch, and a `write`
//! of a few lines on the writer's: at 60,000 GetLicense calls a second its thread
//! switched 3,300 times a second and used 6 % of a core (docs/benchmarks.md, round
//! 10). Here a line costs a lock and a copy; the writer is woken once by the first
//! line after it ran dry, and then gathers whatever comes for [`LINGER`] before one
//! `write`: a few hundred wake-ups and writes a second under load (260 and 1 %
//! there), however many lines there are; an idle service's writer sleeps.
//!
//! Nothing is dropped: past [`MAX_PENDING`] bytes the logging thread writes the
//! buffer out itself. Lines keep their order: a batch is taken and written under one
//! lock of the output. Dropping the [`Guard`] writes out what is left, and
//! [`Lines::flush`] does at once (a crash point calls it before it aborts).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after the first one before writing them: the
/// most a line waits to be written.
const LINGER: Duration = Duration::from_millis(5);

/// Bytes waiting at most before the logging thread writes them itself.
const MAX_PENDING: usize = 1 << 20;

/// A batch buffer larger than this after a burst is not kept for the next one.
const KEEP_CAPACITY: usize = 256 * 1024;

/// The `MakeWriter` of the log lines; cheap to clone.
#[derive(Clone)]
pub struct Lines {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled by the first line into an empty buffer, and at shutdown.
    wake: Condvar,
    /// The output; held while a batch is taken and written, so batches keep order.
    out: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The writer waits for the first line (and will not see one without a signal).
    idle: bool,
    closed: bool,
}

/// Writes out what is left when dropped, then stops the writer thread.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer over `out` with its thread, named `name`.
pub fn start(out: impl Write + Send + 'static, name: &str) -> std::io::Result<(Lines, Guard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        out: Mutex::new(Box::new(out)),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || shared.run())?
    };
    Ok((
        Lines {
            shared: shared.clone(),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Plain bytes: a panic elsewhere cannot leave them half-changed.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn out(&self) -> MutexGuard<'_, Box<dyn Write + Send>> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer thread's loop.
    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut pending = self.pending();
                while pending.bytes.is_empty() && !pending.closed {
                    pending.idle = true;
                    pending = self.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
                }
                pending.idle = false;
                if pending.closed {
                    drop(pending);
                    self.write_out(&mut batch);
                    return;
                }
            }
            std::thread::sleep(LINGER);
            self.write_out(&mut batch);
        }
    }

    /// Takes what is pending and writes it, under the output's lock.
    fn write_out(&self, batch: &mut Vec<u8>) {
        let mut out = self.out();
        std::mem::swap(batch, &mut self.pending().bytes);
        if batch.is_empty() {
            return;
        }
        // Nowhere to report a failed write of the log; the lines are given up.
        let _ = out.write_all(batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > KEEP_CAPACITY {
            *batch = Vec::new();
        }
    }

    fn append(&self, line: &[u8]) {
        let mut pending = self.pending();
        pending.bytes.extend_from_slice(line);
        if pending.idle {
            pending.idle = false;
            self.wake.notify_one();
        } else if pending.bytes.len() > MAX_PENDING {
            // The writer cannot keep up: this thread writes, and so waits for the disk
            // or the pipe like the writer does.
            drop(pending);
            self.write_out(&mut Vec::new());
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.pending().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One line's writer: the formatter writes each line in one call.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// Writes out what is gathered now, without waiting for the writer thread: before
    /// the process aborts on purpose (a crash point), which would lose it.
    pub fn flush(&self) {
        self.shared.write_out(&mut Vec::new());
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read while the writer holds it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_of_every_thread_is_written_whole_and_in_each_threads_order() {
        let sink = Sink::default();
        let (lines, guard) = start(sink.clone(), "test-log").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        // Long enough lines that a few thousand pass MAX_PENDING and
                        // the logging threads write some batches themselves.
                        let line = format!("{t} {i} {}\n", "x".repeat(200));
                        lines.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in written.lines() {
            let mut parts = line.split(' ');
            let t: usize = parts.next().unwrap().parse().unwrap();
            let i: usize = parts.next().unwrap().parse().unwrap();
            assert_eq!(parts.next().unwrap().len(), 200, "a line was cut: {line}");
            assert_eq!(i, next[t], "thread {t}'s lines out of order");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4], "lines were lost");
    }

    #[test]
    fn a_flush_writes_what_is_gathered_at_once() {
        let sink = Sink::default();
        let (lines, _guard) = start(sink.clone(), "test-log").unwrap();
        lines.make_writer().write_all(b"before an abort\n").unwrap();
        // The writer thread would wait LINGER before writing; the flush does not.
        lines.flush();
        assert_eq!(&*sink.0.lock().unwrap(), b"before an abort\n");
    }

    #[test]
    fn a_lone_line_is_written_without_another_line_or_the_shutdown() {
        let sink = Sink::default();
        let (lines, _guard) = start(sink.clone(), "test-log").unwrap();
        lines.make_writer().write_all(b"one\n").unwrap();
        // The writer wakes for the first line; wait for it without a fixed sleep.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was not written"
            );
            std::thread::yield_now();
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"one\n");
    }
}

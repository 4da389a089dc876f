//! What a pull shows while it runs: a live display per layer on a terminal (bytes, rate, ETA),
//! a few plain lines in the journal, nothing with `-q`. Under systemd, the journal reporter also
//! extends the unit's start timeout (`EXTEND_TIMEOUT_USEC`) for as long as bytes keep flowing.
//!
//! The pull updates shared counters (atomics: the unpacking threads bump them per chunk) and
//! calls [`Progress::tick`] a few times a second from its event loop; reporters only read.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LayerState {
    Waiting = 0,
    Downloading = 1,
    Done = 2,
    /// Already in the store (no download).
    Exists = 3,
    Failed = 4,
}

impl LayerState {
    fn from_u8(v: u8) -> LayerState {
        match v {
            1 => LayerState::Downloading,
            2 => LayerState::Done,
            3 => LayerState::Exists,
            4 => LayerState::Failed,
            _ => LayerState::Waiting,
        }
    }
}

/// One layer's live counters.
#[derive(Debug)]
pub struct LayerCounter {
    /// The first 12 digits of the layer's digest.
    pub short: String,
    pub total: Option<u64>,
    bytes: AtomicU64,
    state: AtomicU8,
}

impl LayerCounter {
    pub fn new(short: String, total: Option<u64>) -> LayerCounter {
        LayerCounter {
            short,
            total,
            bytes: AtomicU64::new(0),
            state: AtomicU8::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.bytes.store(0, Ordering::Relaxed);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn set(&self, state: LayerState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> LayerState {
        LayerState::from_u8(self.state.load(Ordering::Relaxed))
    }
}

/// A pull's progress, as reporters see it.
pub struct Snapshot<'a> {
    pub reference: &'a str,
    pub layers: &'a [LayerCounter],
    pub elapsed: Duration,
}

impl Snapshot<'_> {
    /// Bytes downloaded so far, and the total of the layers that are downloaded at all.
    pub fn totals(&self) -> (u64, u64) {
        let active = self
            .layers
            .iter()
            .filter(|l| l.state() != LayerState::Exists);
        active.fold((0, 0), |(b, t), l| {
            (b + l.bytes(), t + l.total.unwrap_or(0))
        })
    }
}

/// A pull's display.
pub trait Progress: Send + Sync {
    /// Called a few times a second while the pull runs, and once at the end (`last`).
    fn tick(&self, snapshot: &Snapshot<'_>, last: bool);
    /// A one-off line (resolving, the digest at the end, ...).
    fn line(&self, text: &str);
}

/// Shows nothing (`-q`).
pub struct Quiet;

impl Progress for Quiet {
    fn tick(&self, _: &Snapshot<'_>, _: bool) {}
    fn line(&self, _: &str) {}
}

/// Human sizes as Docker prints them (decimal units): `12.3MB`, `512kB`, `3B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

fn rate(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { bytes as f64 / secs } else { 0.0 }
}

/// A live display on a terminal: one line per layer, redrawn in place.
pub struct Terminal {
    drawn: Mutex<usize>,
}

impl Terminal {
    pub fn new() -> Terminal {
        Terminal {
            drawn: Mutex::new(0),
        }
    }

    fn layer_line(l: &LayerCounter, elapsed: Duration) -> String {
        let bytes = l.bytes();
        match l.state() {
            LayerState::Waiting => format!("{}: Waiting", l.short),
            LayerState::Exists => format!("{}: Already exists", l.short),
            LayerState::Done => format!("{}: Pull complete {:>28}", l.short, human_size(bytes)),
            LayerState::Failed => format!("{}: Failed", l.short),
            LayerState::Downloading => {
                let r = rate(bytes, elapsed);
                let total = l.total.map(human_size).unwrap_or_else(|| "?".into());
                let eta = match l.total {
                    Some(t) if r > 0.0 && t > bytes => {
                        format!("{}s", ((t - bytes) as f64 / r).ceil())
                    }
                    _ => "-".into(),
                };
                let bar = match l.total {
                    Some(t) if t > 0 => {
                        let filled = ((bytes.min(t) * 20) / t) as usize;
                        format!("[{}{}]", "=".repeat(filled), " ".repeat(20 - filled))
                    }
                    _ => String::new(),
                };
                format!(
                    "{}: Downloading {bar} {}/{} {}/s ETA {eta}",
                    l.short,
                    human_size(bytes),
                    total,
                    human_size(r as u64)
                )
            }
        }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal::new()
    }
}

impl Progress for Terminal {
    fn tick(&self, s: &Snapshot<'_>, _last: bool) {
        let mut drawn = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if *drawn > 0 {
            // Back to the first line of the previous drawing.
            out.push_str(&format!("\x1b[{}A", *drawn));
        }
        for l in s.layers {
            out.push_str("\r\x1b[2K");
            out.push_str(&Self::layer_line(l, s.elapsed));
            out.push('\n');
        }
        *drawn = s.layers.len();
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(out.as_bytes());
        let _ = stderr.flush();
    }

    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
}

/// Plain lines for logs (and the journal): the start of each layer, a summary every few
/// seconds, the end. Under systemd, extends the start timeout while bytes flow.
pub struct Plain {
    state: Mutex<PlainState>,
    /// Send `EXTEND_TIMEOUT_USEC` (a unit is starting).
    extend_timeout: bool,
}

struct PlainState {
    reported: Vec<LayerState>,
    last_summary: Instant,
    last_extension: Option<Instant>,
    bytes_at_extension: u64,
}

/// How often the plain reporter summarises.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// How far each extension moves systemd's start deadline, and how often it is renewed.
pub const EXTEND_BY: Duration = Duration::from_secs(30);
const EXTEND_EVERY: Duration = Duration::from_secs(5);

impl Plain {
    pub fn new(extend_timeout: bool) -> Plain {
        Plain {
            state: Mutex::new(PlainState {
                reported: Vec::new(),
                last_summary: Instant::now(),
                last_extension: None,
                bytes_at_extension: 0,
            }),
            extend_timeout,
        }
    }
}

impl Progress for Plain {
    fn tick(&self, s: &Snapshot<'_>, last: bool) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.reported.resize(s.layers.len(), LayerState::Waiting);
        for (i, l) in s.layers.iter().enumerate() {
            let now = l.state();
            if now == st.reported[i] {
                continue;
            }
            st.reported[i] = now;
            match now {
                LayerState::Downloading => match l.total {
                    Some(t) => eprintln!("layer {}: downloading {}", l.short, human_size(t)),
                    None => eprintln!("layer {}: downloading", l.short),
                },
                LayerState::Done => eprintln!("layer {}: done", l.short),
                LayerState::Exists => eprintln!("layer {}: already present", l.short),
                LayerState::Failed => eprintln!("layer {}: failed", l.short),
                LayerState::Waiting => {}
            }
        }
        let (bytes, total) = s.totals();
        if !last && st.last_summary.elapsed() >= SUMMARY_EVERY {
            st.last_summary = Instant::now();
            let pct = (bytes * 100).checked_div(total).unwrap_or(0);
            eprintln!(
                "pulling {}: {pct}% ({} of {}, {}/s)",
                s.reference,
                human_size(bytes),
                human_size(total),
                human_size(rate(bytes, s.elapsed) as u64)
            );
        }
        if self.extend_timeout && !last {
            let due = st
                .last_extension
                .is_none_or(|t| t.elapsed() >= EXTEND_EVERY);
            if due && bytes > st.bytes_at_extension {
                st.last_extension = Some(Instant::now());
                st.bytes_at_extension = bytes;
                let usec = u32::try_from(EXTEND_BY.as_micros()).unwrap_or(u32::MAX);
                let _ = sd_notify::notify(&[sd_notify::NotifyState::ExtendTimeoutUsec(usec)]);
            }
        }
    }

    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lines() {
        assert_eq!(human_size(3), "3B");
        assert_eq!(human_size(512_000), "512.0kB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        let l = LayerCounter::new("abcdef123456".into(), Some(10_000_000));
        l.set(LayerState::Downloading);
        l.add(5_000_000);
        let line = Terminal::layer_line(&l, Duration::from_secs(1));
        assert!(
            line.starts_with("abcdef123456: Downloading [=========="),
            "{line}"
        );
        assert!(line.contains("5.0MB/10.0MB 5.0MB/s ETA 1s"), "{line}");
        let s = Snapshot {
            reference: "x",
            layers: std::slice::from_ref(&l),
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(s.totals(), (5_000_000, 10_000_000));
    }
}

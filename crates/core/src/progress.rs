//! Progress of long work with rate and ETA. On a terminal: an indicatif bar. Otherwise (nohup,
//! CI, a batch scheduler, where indicatif draws nothing): a plain line on stderr every
//! [`PLAIN_EVERY`] and one at the end, so a log still shows that the work moves and how fast.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between plain progress lines when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// A bar over `len` units of `unit` (e.g. "tasks", "steps").
pub fn bar(len: u64, label: &str, unit: &str) -> Progress {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}} {{msg}}"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix(label.to_string());
        Progress::Bar(pb)
    } else {
        Progress::Plain(Mutex::new(PlainLines::new(
            len,
            label,
            unit,
            Instant::now(),
        )))
    }
}

/// Where progress goes: see the module docs.
pub enum Progress {
    Bar(ProgressBar),
    Plain(Mutex<PlainLines>),
    Hidden,
}

impl Progress {
    /// Progress that shows nothing (`--quiet`, tests).
    pub fn hidden() -> Self {
        Progress::Hidden
    }

    pub fn inc(&self, n: u64) {
        match self {
            Progress::Bar(b) => b.inc(n),
            Progress::Plain(p) => {
                let mut p = p.lock().expect("progress lock");
                let pos = p.pos + n;
                p.update(pos, Instant::now());
            }
            Progress::Hidden => {}
        }
    }

    pub fn set_position(&self, pos: u64) {
        match self {
            Progress::Bar(b) => b.set_position(pos),
            Progress::Plain(p) => p.lock().expect("progress lock").update(pos, Instant::now()),
            Progress::Hidden => {}
        }
    }

    pub fn set_message(&self, msg: String) {
        match self {
            Progress::Bar(b) => b.set_message(msg),
            Progress::Plain(p) => p.lock().expect("progress lock").message = msg,
            Progress::Hidden => {}
        }
    }

    /// Work complete: the bar stays; a plain log gets its last line.
    pub fn finish(&self) {
        match self {
            Progress::Bar(b) => b.finish(),
            Progress::Plain(p) => p.lock().expect("progress lock").last_line(Instant::now()),
            Progress::Hidden => {}
        }
    }

    /// Work complete: the bar goes (the caller prints its own summary); a plain log gets its
    /// last line.
    pub fn finish_and_clear(&self) {
        match self {
            Progress::Bar(b) => b.finish_and_clear(),
            _ => self.finish(),
        }
    }

    /// Work stopped early (an error, Ctrl-C): the bar stays where it stopped.
    pub fn abandon(&self) {
        match self {
            Progress::Bar(b) => b.abandon(),
            _ => self.finish(),
        }
    }
}

/// Plain progress lines: printed when [`PLAIN_EVERY`] has passed since the last one.
pub struct PlainLines {
    label: String,
    unit: String,
    len: u64,
    pos: u64,
    message: String,
    /// Position and time the rate is measured from (the first update: resumed work does not
    /// count the units done before it).
    origin: Option<(u64, Instant)>,
    last_print: Instant,
    finished: bool,
}

impl PlainLines {
    fn new(len: u64, label: &str, unit: &str, now: Instant) -> Self {
        Self {
            label: label.to_string(),
            unit: unit.to_string(),
            len,
            pos: 0,
            message: String::new(),
            origin: None,
            last_print: now,
            finished: false,
        }
    }

    fn update(&mut self, pos: u64, now: Instant) {
        self.pos = pos.min(self.len);
        if self.origin.is_none() {
            self.origin = Some((self.pos, now));
        }
        if !self.finished && now.duration_since(self.last_print) >= PLAIN_EVERY {
            self.last_print = now;
            eprintln!("{}", self.line(now));
        }
    }

    /// The closing line, printed once: a later finish or abandon adds nothing.
    fn last_line(&mut self, now: Instant) {
        if !self.finished {
            self.finished = true;
            eprintln!("{}", self.line(now));
        }
    }

    /// `label: pos/len unit (p%), r unit/s, ETA t [message]`.
    fn line(&self, now: Instant) -> String {
        let pct = if self.len == 0 {
            100.0
        } else {
            100.0 * self.pos as f64 / self.len as f64
        };
        let mut s = format!(
            "{}: {}/{} {} ({pct:.0}%)",
            self.label, self.pos, self.len, self.unit
        );
        if let Some((p0, t0)) = self.origin {
            let secs = now.duration_since(t0).as_secs_f64();
            let done = self.pos.saturating_sub(p0) as f64;
            if secs > 0.0 && done > 0.0 {
                let rate = done / secs;
                let eta = (self.len - self.pos) as f64 / rate;
                s += &format!(", {rate:.1} {}/s, ETA {}", self.unit, clock(eta));
            }
        }
        if !self.message.is_empty() {
            s += &format!(" {}", self.message);
        }
        s
    }
}

/// `h:mm:ss`, or `m:ss` under an hour.
fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_has_rate_and_eta_from_the_first_update() {
        let t0 = Instant::now();
        let mut p = PlainLines::new(1000, "train", "steps", t0);
        // Resumed at step 200: the rate counts only steps done since.
        p.update(200, t0);
        p.update(300, t0 + Duration::from_secs(50));
        p.message = "loss 1.25".into();
        // 100 steps in 50 s = 2 steps/s; 700 left = 350 s = 5:50.
        assert_eq!(
            p.line(t0 + Duration::from_secs(50)),
            "train: 300/1000 steps (30%), 2.0 steps/s, ETA 5:50 loss 1.25"
        );
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(59.4), "0:59");
    }

    #[test]
    fn plain_lines_are_throttled() {
        let t0 = Instant::now();
        let mut p = PlainLines::new(10, "collect", "tasks", t0);
        p.update(1, t0 + Duration::from_secs(5));
        assert_eq!(p.last_print, t0, "nothing printed before PLAIN_EVERY");
        let later = t0 + PLAIN_EVERY;
        p.update(2, later);
        assert_eq!(p.last_print, later);
        // No rate yet at the origin; an empty run reads 100%.
        let q = PlainLines::new(0, "x", "u", t0);
        assert_eq!(q.line(t0), "x: 0/0 u (100%)");
    }
}

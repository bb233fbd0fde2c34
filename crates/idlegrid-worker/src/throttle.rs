//! `cpu_percent`: running task scripts get a share of the CPU by a duty cycle, as BOINC does.
//! Every [`PERIOD`] the process group of each running script is continued (`SIGCONT`) for
//! `percent` of the period and stopped (`SIGSTOP`) for the rest; a script using one core thus
//! takes about `percent` % of it on average. A stopped script still counts its wall-clock time,
//! so the runner stretches a throttled task's timeout by the same factor ([`Throttle::stretch`]).

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Length of one stop/continue cycle. One second, like BOINC: short enough that a throttled
/// device's load looks steady, long enough that the signals cost nothing.
pub const PERIOD: Duration = Duration::from_secs(1);

/// The process groups being throttled, and their share of the CPU.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// Share of each period the scripts run, 1–99.
    percent: u8,
    /// Process group ids of the running scripts.
    groups: Arc<Mutex<HashSet<Pid>>>,
}

impl Throttle {
    /// A throttle giving scripts `percent` of the CPU; `None` for 100 or more (no throttling).
    pub fn new(percent: u8) -> Option<Throttle> {
        (percent < 100).then(|| Throttle {
            percent: percent.max(1),
            groups: Arc::default(),
        })
    }

    /// `timeout` of a task that runs only `percent` of the time.
    pub fn stretch(&self, timeout: Duration) -> Duration {
        timeout.mul_f64(100.0 / f64::from(self.percent))
    }

    /// Throttles the process group `group` until the returned guard is dropped (which lets it
    /// run again, should it be stopped).
    pub fn enroll(&self, group: Pid) -> Enrolled {
        self.lock().insert(group);
        Enrolled {
            throttle: self.clone(),
            group,
        }
    }

    /// Stops and continues the enrolled groups until `stop` fires, then lets them all run.
    pub async fn run(&self, stop: CancellationToken) {
        let on = PERIOD.mul_f64(f64::from(self.percent) / 100.0);
        let off = PERIOD.saturating_sub(on);
        loop {
            self.signal(Signal::SIGCONT);
            if sleep_unless(&stop, on).await {
                break;
            }
            self.signal(Signal::SIGSTOP);
            if sleep_unless(&stop, off).await {
                break;
            }
        }
        self.signal(Signal::SIGCONT);
    }

    fn signal(&self, signal: Signal) {
        for group in self.lock().iter() {
            // ESRCH: the group ended before it was unenrolled; nothing to do.
            let _ = killpg(*group, signal);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Pid>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `stop` fired before `delay` passed.
async fn sleep_unless(stop: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// A process group being throttled; dropping it ends that.
#[derive(Debug)]
pub struct Enrolled {
    /// The throttle it is enrolled in.
    throttle: Throttle,
    /// The group.
    group: Pid,
}

impl Drop for Enrolled {
    fn drop(&mut self) {
        self.throttle.lock().remove(&self.group);
        let _ = killpg(self.group, Signal::SIGCONT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shares_below_100_throttle() {
        assert!(Throttle::new(100).is_none());
        let half = Throttle::new(50).unwrap();
        assert_eq!(
            half.stretch(Duration::from_secs(10)),
            Duration::from_secs(20)
        );
    }

    /// A real process group, stopped for half of each period: its CPU time over 2 s of a
    /// busy loop is well under the 2 s it would get alone.
    #[tokio::test]
    async fn a_throttled_group_gets_about_its_share() {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("python3")
            .args(["-c", "import time,os\nt=time.time()\nwhile time.time()-t<2: pass\nprint(sum(os.times()[:2]))"])
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let throttle = Throttle::new(30).unwrap();
        let group = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let enrolled = throttle.enroll(group);
        let stop = CancellationToken::new();
        let cycle = tokio::spawn({
            let (throttle, stop) = (throttle.clone(), stop.clone());
            async move { throttle.run(stop).await }
        });
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        stop.cancel();
        cycle.await.unwrap();
        drop(enrolled);
        let cpu: f64 = String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            cpu < 1.3,
            "a 30 % throttle let the script use {cpu} s of 2 s"
        );
    }
}

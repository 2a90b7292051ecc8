//! Background tasks a server runs beside its HTTP workers (operation workers, the
//! webhook relay, the rollout driver): started on the current runtime, told to stop
//! through one watch channel, and waited for together.

use std::future::Future;

use tokio::{
    sync::{Mutex, watch},
    task::JoinHandle,
};

/// A group of tasks that stop together. Each task watches the receiver it was given
/// and returns once it turns `true`.
pub struct Tasks {
    stop: watch::Sender<bool>,
    running: Mutex<Vec<JoinHandle<()>>>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

impl Tasks {
    pub fn new() -> Self {
        Tasks {
            stop: watch::channel(false).0,
            running: Mutex::new(Vec::new()),
        }
    }

    /// Spawns `task(stop)` on the current runtime, `stop` turning `true` at shutdown.
    /// Called while the owner starts, before anything can shut it down.
    pub fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task(self.stop.subscribe()));
        self.running.get_mut().push(handle);
    }

    /// Tells every task to stop and returns once all have returned.
    ///
    /// The lock is held while they finish: the signal's handler and the server's end
    /// both shut down, and the second caller must return only once the tasks have
    /// (taking them out and returning at once let the process exit before the first
    /// caller's tasks had released their leases).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let mut running = self.running.lock().await;
        for task in running.drain(..) {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Duration,
    };

    use super::*;

    #[tokio::test]
    async fn a_second_shutdown_returns_only_once_the_tasks_have_finished() {
        let finished = Arc::new(AtomicBool::new(false));
        let mut tasks = Tasks::new();
        let done = finished.clone();
        tasks.spawn(|mut stop| async move {
            let _ = stop.wait_for(|s| *s).await;
            // Work left after the signal (releasing a lease).
            tokio::time::sleep(Duration::from_millis(200)).await;
            done.store(true, Ordering::SeqCst);
        });
        let tasks = Arc::new(tasks);
        let first = tokio::spawn({
            let tasks = tasks.clone();
            async move { tasks.shutdown().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks.shutdown().await;
        assert!(
            finished.load(Ordering::SeqCst),
            "the second caller returned before the task finished"
        );
        first.await.unwrap();
    }
}

//! Evaluation slots: how many policy instances run at once, and who waits.
//!
//! Why bounded near the core count: a policy's deadline is wall-clock time,
//! so more evaluations running than there are cores turns CPU queueing into
//! deadline failures that are not the policy's fault. Waiting for a slot is
//! not running: the policy's deadline starts once it holds one. The wait is
//! bounded by the caller's own deadline; past it the caller is told the
//! host is overloaded, which is never recorded as a policy's vote.
//!
//! Why a per-policy cap: one slow policy (say a shadow policy looping to its
//! 10 s limit) bound to one service would otherwise take every slot and
//! starve every other service. A policy (by digest) may hold at most half
//! the slots (at least one), and the queue skips waiters whose policy is at
//! its cap, so others go past them.
//!
//! A decision runs its policies one after another on one thread, so it
//! holds one slot for all of them (a [`Lease`]) and moves it from policy to
//! policy while the next one is under its cap: a finished policy does not
//! send its decision to the back of the queue, and the slot is not left idle
//! while another thread is woken to take it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A bounded, FIFO (apart from capped policies) queue of evaluation slots.
#[derive(Debug)]
pub(crate) struct Slots {
    capacity: u32,
    per_policy: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: u32,
    /// Slots held per policy digest (entries removed at zero).
    held: HashMap<Arc<str>, u32>,
    /// Waiters in arrival order; a release hands its slot to the first one
    /// whose policy is under its cap.
    queue: VecDeque<Arc<Waiter>>,
}

#[derive(Debug)]
struct Waiter {
    policy: Arc<str>,
    /// Set (under the state lock) when a release handed this waiter a slot.
    granted: AtomicBool,
    wake: Condvar,
}

/// No slot could be had before the caller's deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueTimeout {
    pub waited: Duration,
}

impl Slots {
    pub fn new(capacity: u32) -> Slots {
        let capacity = capacity.max(1);
        Slots {
            capacity,
            per_policy: (capacity / 2).max(1),
            state: Mutex::new(State {
                free: capacity,
                held: HashMap::new(),
                queue: VecDeque::new(),
            }),
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn eligible(&self, state: &State, policy: &str) -> bool {
        state.free > 0 && state.held.get(policy).copied().unwrap_or(0) < self.per_policy
    }

    fn take(state: &mut State, policy: &Arc<str>) {
        state.free -= 1;
        *state.held.entry(policy.clone()).or_insert(0) += 1;
    }

    /// An empty lease: holds no slot until [`Lease::hold`].
    pub fn lease(&self) -> Lease<'_> {
        Lease {
            slots: self,
            policy: None,
        }
    }

    /// Wait for a slot for `policy` until `deadline`.
    #[cfg(test)]
    pub fn acquire(&self, policy: &str, deadline: Instant) -> Result<Lease<'_>, QueueTimeout> {
        let mut lease = self.lease();
        lease.hold(policy, deadline)?;
        Ok(lease)
    }

    fn wait(&self, policy: Arc<str>, deadline: Instant) -> Result<Arc<str>, QueueTimeout> {
        let started = Instant::now();
        let mut state = self.lock();
        // INVARIANT: after every release no queued waiter is eligible, so
        // an eligible newcomer jumps no one.
        if self.eligible(&state, &policy) {
            Self::take(&mut state, &policy);
            return Ok(policy);
        }
        let me = Arc::new(Waiter {
            policy: policy.clone(),
            granted: AtomicBool::new(false),
            wake: Condvar::new(),
        });
        state.queue.push_back(me.clone());
        loop {
            if me.granted.load(Relaxed) {
                return Ok(policy);
            }
            let now = Instant::now();
            if now >= deadline {
                state.queue.retain(|w| !Arc::ptr_eq(w, &me));
                return Err(QueueTimeout {
                    waited: now - started,
                });
            }
            state = me
                .wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn unhold(state: &mut State, policy: &Arc<str>) {
        if let Some(n) = state.held.get_mut(policy) {
            *n -= 1;
            if *n == 0 {
                state.held.remove(policy);
            }
        }
    }

    fn release(&self, policy: &Arc<str>) {
        let mut state = self.lock();
        state.free += 1;
        Self::unhold(&mut state, policy);
        self.dispatch(&mut state);
    }

    /// Hand free slots to the first eligible waiters, in arrival order.
    fn dispatch(&self, state: &mut State) {
        let mut i = 0;
        while state.free > 0 && i < state.queue.len() {
            let policy = state.queue[i].policy.clone();
            if self.eligible(state, &policy) {
                let w = state.queue.remove(i).expect("index checked");
                Self::take(state, &policy);
                w.granted.store(true, Relaxed);
                w.wake.notify_one();
            } else {
                i += 1;
            }
        }
    }
}

/// One caller's claim on a slot, moved from policy to policy; dropping it
/// hands the slot on.
#[derive(Debug)]
pub struct Lease<'a> {
    slots: &'a Slots,
    /// The policy the held slot counts against; `None`: no slot held.
    policy: Option<Arc<str>>,
}

impl Lease<'_> {
    /// Hold a slot for `policy`. A slot already held moves to `policy` at
    /// once when `policy` is under its cap; otherwise it is given up and
    /// the lease queues for `policy` until `deadline`.
    pub(crate) fn hold(&mut self, policy: &str, deadline: Instant) -> Result<(), QueueTimeout> {
        if let Some(current) = self.policy.take() {
            if *current == *policy {
                self.policy = Some(current);
                return Ok(());
            }
            let slots = self.slots;
            let mut state = slots.lock();
            if state.held.get(policy).copied().unwrap_or(0) < slots.per_policy {
                let next: Arc<str> = Arc::from(policy);
                Slots::unhold(&mut state, &current);
                *state.held.entry(next.clone()).or_insert(0) += 1;
                // `current` may have been at its cap with waiters behind it;
                // only a free slot can serve them, so this is usually a no-op.
                slots.dispatch(&mut state);
                self.policy = Some(next);
                return Ok(());
            }
            state.free += 1;
            Slots::unhold(&mut state, &current);
            slots.dispatch(&mut state);
        }
        self.policy = Some(self.slots.wait(Arc::from(policy), deadline)?);
        Ok(())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(policy) = self.policy.take() {
            self.slots.release(&policy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn one_policy_holds_at_most_half_the_slots() {
        let slots = Slots::new(4);
        let a1 = slots.acquire("a", soon()).unwrap();
        let _a2 = slots.acquire("a", soon()).unwrap();
        // Two slots are free, but `a` is at its cap of two.
        assert!(slots.acquire("a", soon()).is_err());
        let _b1 = slots.acquire("b", soon()).unwrap();
        let _c1 = slots.acquire("c", soon()).unwrap();
        // All four taken.
        let waited = slots.acquire("d", soon()).unwrap_err().waited;
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        drop(a1);
        let _d1 = slots.acquire("d", soon()).unwrap();
    }

    #[test]
    fn a_single_slot_still_serves_every_policy() {
        let slots = Slots::new(1);
        let a = slots.acquire("a", soon()).unwrap();
        assert!(slots.acquire("b", soon()).is_err());
        drop(a);
        let _b = slots.acquire("b", soon()).unwrap();
        assert_eq!(Slots::new(0).capacity(), 1, "at least one slot");
    }

    #[test]
    fn a_deadline_already_past_takes_only_a_free_slot() {
        let slots = Slots::new(2);
        let past = Instant::now() - Duration::from_secs(1);
        let _a = slots.acquire("a", past).unwrap();
        assert!(slots.acquire("a", past).is_err(), "`a` is at its cap");
        let _b = slots.acquire("b", past).unwrap();
        assert!(slots.acquire("c", past).is_err(), "no slot free");
    }

    /// A lease keeps its slot from policy to policy while the next one is
    /// under its cap, and otherwise gives it up and queues like anyone.
    #[test]
    fn a_lease_moves_its_slot_between_policies() {
        let slots = Slots::new(2);
        let mut lease = slots.lease();
        lease.hold("a", soon()).unwrap();
        let _other = slots.acquire("x", soon()).unwrap();
        // No slot free, yet the lease moves on without waiting.
        lease.hold("b", Instant::now()).unwrap();
        lease.hold("b", Instant::now()).unwrap();
        {
            let state = slots.lock();
            assert_eq!(state.free, 0);
            assert_eq!(state.held.get("b"), Some(&1));
            assert_eq!(state.held.get("a"), None);
        }
        // `x` is at its cap of one: the lease gives its slot up, and with
        // no other slot free it cannot have one.
        assert!(lease.hold("x", soon()).is_err());
        assert_eq!(slots.lock().free, 1, "the slot was given up");
        drop(lease);
        assert_eq!(slots.lock().free, 1, "an empty lease returns nothing");
    }

    /// A release goes to the first waiter whose policy is under its cap:
    /// waiters for a capped policy do not block the others behind them.
    #[test]
    fn a_release_skips_waiters_of_a_capped_policy() {
        let slots = Arc::new(Slots::new(2));
        let hog = slots.acquire("hog", later()).unwrap();
        let other = slots.acquire("x", later()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut waiters = Vec::new();
        for (i, policy) in ["hog", "hog", "y"].into_iter().enumerate() {
            let (mine, tx) = (slots.clone(), tx.clone());
            waiters.push(std::thread::spawn(move || {
                let _slot = mine.acquire(policy, later()).unwrap();
                tx.send(policy).unwrap();
                // Hold the slot until the test is done with the order.
                std::thread::sleep(Duration::from_millis(200));
            }));
            // Queue them in this order.
            while slots.lock().queue.len() < i + 1 {
                std::thread::yield_now();
            }
        }
        // `x` frees a slot: the two `hog` waiters are ahead but `hog` holds
        // its cap of one, so `y` gets it.
        drop(other);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "y");
        drop(hog);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "hog");
        for w in waiters {
            w.join().unwrap();
        }
        let state = slots.lock();
        assert_eq!((state.free, state.held.len()), (2, 0), "all returned");
    }
}

//! Mixed load for fault tests: shared, blocking and exclusive work side by side, each
//! call bounded by a deadline and each reply checked against its own request.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{AsyncCommands, Value};
use redis_lanes::Client;
use tokio::task::JoinHandle;

/// The shared counter `INCR` workers add to.
pub(crate) const COUNTER: &str = "load:counter";
/// The counter exclusive workers add to, inside `MULTI`/`EXEC`.
pub(crate) const EX_COUNTER: &str = "load:ex-counter";

/// What the workers saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    /// Calls that succeeded.
    pub(crate) ok: u64,
    /// `INCR`s acknowledged, and those whose outcome was reported unknown.
    pub(crate) incr_acked: u64,
    pub(crate) incr_unknown: u64,
    pub(crate) ex_acked: u64,
    pub(crate) ex_unknown: u64,
    /// Errors by kind name.
    pub(crate) errors: std::collections::BTreeMap<String, u64>,
    /// Replies that answered some other request: must stay 0.
    pub(crate) misrouted: u64,
    /// Calls that did not return within the deadline: must stay 0.
    pub(crate) overdue: u64,
    pub(crate) slowest: Duration,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.ok += other.ok;
        self.incr_acked += other.incr_acked;
        self.incr_unknown += other.incr_unknown;
        self.ex_acked += other.ex_acked;
        self.ex_unknown += other.ex_unknown;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.misrouted += other.misrouted;
        self.overdue += other.overdue;
        self.slowest = self.slowest.max(other.slowest);
    }

    /// Counts an error; `true` when the request's outcome is unknown. A server's error
    /// reply (e.g. `LOADING` right after a restart) is a known outcome: not run.
    fn error(&mut self, err: &redis::RedisError) -> bool {
        match redis_lanes::Error::from_redis(err) {
            Some(err) => {
                *self.errors.entry(format!("{:?}", err.kind())).or_default() += 1;
                err.is_outcome_unknown()
            }
            None => {
                *self
                    .errors
                    .entry(format!("server {:?}", err.kind()))
                    .or_default() += 1;
                false
            }
        }
    }
}

/// Running workers; [`Load::finish`] stops them and sums their tallies.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Tally>>,
}

/// Bounds every call: far above any configured wait, so only a hang trips it.
pub(crate) const DEADLINE: Duration = Duration::from_secs(15);

/// The client options the load expects: every wait bounded.
pub(crate) async fn client(url: &str) -> Client {
    Client::builder(url)
        .client_name("load")
        .connect_timeout(Duration::from_secs(2))
        .response_timeout(Some(Duration::from_secs(3)))
        .disconnected_wait(Duration::from_secs(3))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(500))
        .blocking_grace(Duration::from_secs(1))
        .blocking_acquire_timeout(Duration::from_secs(3))
        .exclusive_acquire_timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect("connect")
}

impl Load {
    /// Starts `shared` echo workers, `incr` counter workers, `blocking` BLPOP workers
    /// and `exclusive` MULTI/EXEC workers on `client`.
    pub(crate) fn start(
        client: &Client,
        shared: usize,
        incr: usize,
        blocking: usize,
        exclusive: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..shared {
            tasks.push(spawn(client, &stop, move |c, i, t| echo(c, w, i, t)));
        }
        for _ in 0..incr {
            tasks.push(spawn(client, &stop, incr_once));
        }
        for w in 0..blocking {
            tasks.push(spawn(client, &stop, move |c, i, t| pop(c, w, i, t)));
        }
        for _ in 0..exclusive {
            tasks.push(spawn(client, &stop, exclusive_incr));
        }
        Load { stop, tasks }
    }

    pub(crate) async fn finish(self) -> Tally {
        self.stop.store(true, Relaxed);
        let mut total = Tally::default();
        for task in self.tasks {
            let tally = tokio::time::timeout(DEADLINE * 2, task)
                .await
                .expect("a worker did not stop")
                .expect("a worker panicked");
            total.add(&tally);
        }
        total
    }
}

/// Runs `step` until stopped (at most 1,000,000 times), timing each call.
fn spawn<F, Fut>(client: &Client, stop: &Arc<AtomicBool>, mut step: F) -> JoinHandle<Tally>
where
    F: FnMut(Client, u64, Shared) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let client = client.clone();
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        let tally = Shared::default();
        for i in 0..1_000_000u64 {
            if stop.load(Relaxed) {
                break;
            }
            let started = Instant::now();
            let call = step(client.clone(), i, Arc::clone(&tally));
            let overdue = tokio::time::timeout(DEADLINE, call).await.is_err();
            let mut t = lock(&tally);
            t.overdue += u64::from(overdue);
            t.calls += 1;
            t.slowest = t.slowest.max(started.elapsed());
        }
        let t = lock(&tally);
        t.clone()
    })
}

/// A worker's tally, shared with the call in progress (which a deadline may abandon).
type Shared = Arc<Mutex<Tally>>;

fn lock(tally: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(|p| p.into_inner())
}

async fn echo(mut client: Client, worker: usize, i: u64, tally: Shared) {
    let token = format!("w{worker}:{i}");
    if i.is_multiple_of(4) {
        // A pipeline: both replies must be its own.
        let mut pipe = redis::pipe();
        pipe.cmd("ECHO")
            .arg(format!("{token}a"))
            .cmd("ECHO")
            .arg(format!("{token}b"));
        match pipe.query_async::<(String, String)>(&mut client).await {
            Ok((a, b)) if a == format!("{token}a") && b == format!("{token}b") => {
                lock(&tally).ok += 1
            }
            Ok(_) => lock(&tally).misrouted += 1,
            Err(e) => {
                lock(&tally).error(&e);
            }
        }
        return;
    }
    match redis::cmd("ECHO")
        .arg(&token)
        .query_async::<Value>(&mut client)
        .await
    {
        Ok(Value::BulkString(b)) if b == token.as_bytes() => lock(&tally).ok += 1,
        Ok(_) => lock(&tally).misrouted += 1,
        Err(e) => {
            lock(&tally).error(&e);
        }
    }
}

async fn incr_once(mut client: Client, _i: u64, tally: Shared) {
    match client.incr::<_, _, i64>(COUNTER, 1).await {
        Ok(_) => {
            lock(&tally).ok += 1;
            lock(&tally).incr_acked += 1;
        }
        Err(e) => {
            if lock(&tally).error(&e) {
                lock(&tally).incr_unknown += 1;
            }
        }
    }
}

async fn pop(mut client: Client, worker: usize, i: u64, tally: Shared) {
    let key = format!("load:q:{worker}");
    let token = format!("{worker}:{i}");
    if let Err(e) = client.rpush::<_, _, ()>(&key, &token).await {
        lock(&tally).error(&e);
        return;
    }
    match client.blpop::<_, Option<(String, String)>>(&key, 1.0).await {
        // An element pushed earlier whose pop failed may come first: the queue is the
        // worker's own, so any of its tokens is in order; someone else's is not.
        Ok(Some((k, v))) if k == key && v.starts_with(&format!("{worker}:")) => {
            lock(&tally).ok += 1
        }
        Ok(Some(_)) => lock(&tally).misrouted += 1,
        // Lost to a server restart between the push and the pop.
        Ok(None) => lock(&tally).ok += 1,
        Err(e) => {
            lock(&tally).error(&e);
        }
    }
}

async fn exclusive_incr(client: Client, _i: u64, tally: Shared) {
    let mut ex = match client.exclusive().await {
        Ok(ex) => ex,
        Err(e) => {
            *lock(&tally)
                .errors
                .entry(format!("{:?}", e.kind()))
                .or_default() += 1;
            return;
        }
    };
    let mut pipe = redis::pipe();
    pipe.atomic()
        .incr(EX_COUNTER, 1)
        .cmd("ECHO")
        .arg("in-multi");
    match pipe.query_async::<Value>(&mut ex).await {
        Ok(Value::Array(items)) if matches!(items.as_slice(), [Value::Int(_), Value::BulkString(b)] if b == b"in-multi") =>
        {
            let mut t = lock(&tally);
            t.ok += 1;
            t.ex_acked += 1;
        }
        Ok(other) => {
            eprintln!("exclusive MULTI/EXEC got {other:?}");
            lock(&tally).misrouted += 1;
        }
        Err(e) => {
            if lock(&tally).error(&e) {
                lock(&tally).ex_unknown += 1;
            }
        }
    }
}

/// Reads a counter on a fresh connection (0 when missing).
pub(crate) async fn counter(url: &str, key: &str) -> u64 {
    let mut conn = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("side connection");
    let n: Option<u64> = conn.get(key).await.expect("GET");
    n.unwrap_or(0)
}

/// Asserts the invariants every fault test shares.
pub(crate) async fn check(url: &str, tally: &Tally) {
    assert_eq!(tally.overdue, 0, "calls overran their deadline: {tally:?}");
    assert_eq!(
        tally.misrouted, 0,
        "replies reached the wrong caller: {tally:?}"
    );
    let n = counter(url, COUNTER).await;
    assert!(
        n >= tally.incr_acked && n <= tally.incr_acked + tally.incr_unknown,
        "INCR counter {n} outside [{}, {}]: {tally:?}",
        tally.incr_acked,
        tally.incr_acked + tally.incr_unknown
    );
    let n = counter(url, EX_COUNTER).await;
    assert!(
        n >= tally.ex_acked && n <= tally.ex_acked + tally.ex_unknown,
        "MULTI counter {n} outside [{}, {}]: {tally:?}",
        tally.ex_acked,
        tally.ex_acked + tally.ex_unknown
    );
}

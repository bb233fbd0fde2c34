//! Queues in Redis, shared by several coordinator processes. Same contract as
//! [`super::MemoryQueues`]; every operation that reads and then writes runs as one Lua script, so
//! concurrent coordinators never see or leave a half-done change, and each call is one round trip.
//!
//! Key layout, every key under the prefix `P` given at construction:
//!
//! ```text
//! P stage:<name>              list    stage queue, items as "<job>:<id>"
//! P job:<job>:queue           list    the job's queued task ids, front first
//! P job:<job>:avoid           hash    retried task -> the worker it is kept from
//! P job:<job>:avoid_until     zset    retried task, scored by the unix ms its avoidance ends
//! P job:<job>:replicated      set     task ids queued as replicas
//! P job:<job>:holders         set     "<task>:<worker>": workers that hold or held a copy
//! P job:<job>:confirming      set     replicated task ids some worker holds or held a copy of
//! P job:<job>:leases          set     lease ids of the job's leases
//! P job:<job>:progress        string  sum of the progress of the job's leases
//! P leases                    hash    lease id -> "<task> <job> <worker> <expires_ms> <progress>"
//! P deadlines                 zset    lease id, scored by its deadline (unix ms)
//! P worker:<worker>:leases    set     lease ids the worker holds
//! P wake:tasks, P wake:<stage>        pub/sub channels that wake waiting consumers
//! ```
//!
//! Lease ids are written zero-padded to 16 digits, so the deadline set orders equal deadlines by
//! id, as the memory backend does. The scripts build key names from the prefix rather than take
//! them all as declared keys, so this backend needs a single Redis server (or a primary with
//! replicas), not Redis Cluster. Times come from the calling coordinator's clock (`now_ms`), not
//! Redis `TIME`, so deadlines mean the same as in the memory backend and the records; the
//! coordinators sharing a Redis should keep their clocks in step.
//!
//! A Redis that loses its data (restarted without persistence) loses queued items and leases,
//! never records: the coordinators' sweepers find the work unmoved and queue it again within
//! two sweeps (`idlegrid_coordinator::sweeper`). Persistence (`appendonly yes`) only shortens
//! that pause.

use super::{
    Copies, Item, JobDepth, Lease, MAX_SKIPPED, Queues, Stage, duration_ms, new_lease_id,
    pop_waiting,
};
use crate::{Result, StorageError, now_ms};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script, ToRedisArgs};
use async_trait::async_trait;
use futures::StreamExt;
use idlegrid_domain::{JobId, LeaseId, TaskId, WorkerId};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a call may wait for Redis' answer. Longer than the client's default of half a
/// second: a busy Redis on a small machine must not turn into spurious errors, since a script
/// that timed out on our side may still have run.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often waiting consumers look again while the wake-up subscription is down.
const POLL: Duration = Duration::from_millis(200);
/// Spare lease id candidates sent with each lease request, in case some are taken already.
const SPARE_IDS: usize = 8;

/// Lua shared by every script (after `MAX_SKIPPED`, from Rust): key names, the lease record,
/// and ending leases.
const PRELUDE: &str = r#"
local P = ARGV[1]
local LEASES = P .. 'leases'
local DEADLINES = P .. 'deadlines'

local function job_key(job, what) return P .. 'job:' .. job .. ':' .. what end
local function worker_key(worker) return P .. 'worker:' .. worker .. ':leases' end

-- Calls a variadic command over a list in slices: Lua's unpack is limited by its stack. The
-- slice length is even so that field/value pairs stay together.
local function each_slice(cmd, key, list)
  local n = #list
  local i = 1
  while i <= n do
    local j = math.min(i + 999, n)
    redis.call(cmd, key, unpack(list, i, j))
    i = j + 1
  end
end

-- task, job, worker, expires_ms, progress
local function parse(rec)
  return string.match(rec, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
end

-- Ends leases, each given as {id, task, job, worker, progress}: the record, its deadline, its
-- index entries and its share of the job's progress. With `release`, their holders may take a
-- copy of the task again (their attempt failed).
local function remove_leases(gone, release)
  if #gone == 0 then return end
  local ids = {}
  local by_worker = {}
  local by_job = {}
  for i, l in ipairs(gone) do
    ids[i] = l[1]
    local w = by_worker[l[4]]
    if not w then w = {}; by_worker[l[4]] = w end
    w[#w + 1] = l[1]
    local j = by_job[l[3]]
    if not j then j = {ids = {}, progress = {}, holders = {}}; by_job[l[3]] = j end
    j.ids[#j.ids + 1] = l[1]
    j.progress[#j.progress + 1] = tonumber(l[5])
    j.holders[#j.holders + 1] = l[2] .. ':' .. l[4]
  end
  each_slice('HDEL', LEASES, ids)
  each_slice('ZREM', DEADLINES, ids)
  for worker, wids in pairs(by_worker) do each_slice('SREM', worker_key(worker), wids) end
  for job, j in pairs(by_job) do
    local leases = job_key(job, 'leases')
    each_slice('SREM', leases, j.ids)
    local pk = job_key(job, 'progress')
    if redis.call('SCARD', leases) == 0 then
      -- No lease left: the sum is exactly zero, whatever rounding left behind.
      redis.call('DEL', pk)
    else
      local sum = tonumber(redis.call('GET', pk)) or 0
      local before = sum
      for _, p in ipairs(j.progress) do
        sum = sum - p
        if sum < 0 then sum = 0 end
      end
      if sum ~= before then redis.call('SET', pk, string.format('%.17g', sum)) end
    end
    if release then each_slice('SREM', job_key(job, 'holders'), j.holders) end
  end
end
"#;

/// ARGV: prefix, job, worker, now_ms, expires_ms, max, hold_at_most, replicas only ("1" or "0"),
/// lease id candidates...
/// Returns lease id, task id, lease id, task id, ...
const LEASE_TASKS: &str = r#"
local job, worker, now, expires = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local replicas_only = ARGV[8] == '1'
local queue = job_key(job, 'queue')
local len = redis.call('LLEN', queue)
if len == 0 then return {} end
local room = tonumber(ARGV[7]) - redis.call('SCARD', worker_key(worker))
if room <= 0 then return {} end
local want = math.min(tonumber(ARGV[6]), len, room)
-- Pass over candidate ids already in use, so two leases never share an id. Checked before
-- anything is written: a failed script is not rolled back.
local ids = {}
for i = 9, #ARGV do
  if #ids == want then break end
  if redis.call('HEXISTS', LEASES, ARGV[i]) == 0 then ids[#ids + 1] = ARGV[i] end
end
if #ids < want then return redis.error_reply('ERR every lease id candidate is in use') end

local avoid = job_key(job, 'avoid')
local avoid_until = job_key(job, 'avoid_until')
local replicated = job_key(job, 'replicated')
local holders = job_key(job, 'holders')
local confirming = job_key(job, 'confirming')
local ended = redis.call('ZRANGEBYSCORE', avoid_until, '-inf', now)
if #ended > 0 then
  each_slice('HDEL', avoid, ended)
  redis.call('ZREMRANGEBYSCORE', avoid_until, '-inf', now)
end

local tasks
if not replicas_only and redis.call('EXISTS', avoid) == 0
  and redis.call('EXISTS', replicated) == 0 then
  -- Nothing is kept from anyone: take from the front in one go.
  tasks = redis.call('LPOP', queue, want)
else
  tasks = {}
  local skipped = {}
  while #tasks < want and #skipped < MAX_SKIPPED do
    local task = redis.call('LPOP', queue)
    if not task then break end
    if redis.call('HGET', avoid, task) == worker
      or redis.call('SISMEMBER', holders, task .. ':' .. worker) == 1
      or (replicas_only and redis.call('SISMEMBER', confirming, task) == 0) then
      skipped[#skipped + 1] = task
    else
      if redis.call('HDEL', avoid, task) == 1 then redis.call('ZREM', avoid_until, task) end
      if redis.call('SISMEMBER', replicated, task) == 1 then
        redis.call('SADD', holders, task .. ':' .. worker)
        redis.call('SADD', confirming, task)
      end
      tasks[#tasks + 1] = task
    end
  end
  -- The copies passed over go back to the front, in the order they were in.
  local back = {}
  for i = #skipped, 1, -1 do back[#back + 1] = skipped[i] end
  each_slice('LPUSH', queue, back)
end
if #tasks == 0 then return {} end

local records, scores, used, out = {}, {}, {}, {}
for i, task in ipairs(tasks) do
  local id = ids[i]
  used[i] = id
  records[#records + 1] = id
  records[#records + 1] = task .. ' ' .. job .. ' ' .. worker .. ' ' .. expires .. ' 0'
  scores[#scores + 1] = expires
  scores[#scores + 1] = id
  out[#out + 1] = id
  out[#out + 1] = task
end
each_slice('HSET', LEASES, records)
each_slice('ZADD', DEADLINES, scores)
each_slice('SADD', job_key(job, 'leases'), used)
each_slice('SADD', worker_key(worker), used)
return out
"#;

/// ARGV: prefix, job, task, copies, front ("1" or "0"), excluded workers...
const ENQUEUE_REPLICAS: &str = r#"
local job, task, copies, front = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1'
redis.call('SADD', job_key(job, 'replicated'), task)
local excluded = {}
for i = 6, #ARGV do excluded[#excluded + 1] = task .. ':' .. ARGV[i] end
each_slice('SADD', job_key(job, 'holders'), excluded)
if #excluded > 0 then redis.call('SADD', job_key(job, 'confirming'), task) end
local queue = job_key(job, 'queue')
local cmd = front and 'LPUSH' or 'RPUSH'
local batch = {}
for i = 1, math.min(copies, 1000) do batch[i] = task end
local left = copies
while left > 0 do
  local n = math.min(left, 1000)
  redis.call(cmd, queue, unpack(batch, 1, n))
  left = left - n
end
redis.call('PUBLISH', P .. 'wake:tasks', '')
return 0
"#;

/// ARGV: prefix, lease, worker, expires_ms, progress or "". Returns the renewed record or nil.
const RENEW: &str = r#"
local id, worker, expires, progress = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rec = redis.call('HGET', LEASES, id)
if not rec then return false end
local task, job, holder, old_expires, old_progress = parse(rec)
if holder ~= worker then return false end
-- A renewal never brings a deadline forward.
local new_expires = old_expires
if tonumber(expires) > tonumber(old_expires) then new_expires = expires end
local new_progress = old_progress
if progress ~= '' then
  new_progress = progress
  local pk = job_key(job, 'progress')
  local sum = (tonumber(redis.call('GET', pk)) or 0)
    + (tonumber(new_progress) - tonumber(old_progress))
  redis.call('SET', pk, string.format('%.17g', sum))
end
local renewed = task .. ' ' .. job .. ' ' .. holder .. ' ' .. new_expires .. ' ' .. new_progress
redis.call('HSET', LEASES, id, renewed)
if new_expires ~= old_expires then redis.call('ZADD', DEADLINES, new_expires, id) end
return renewed
"#;

/// ARGV: prefix, then lease id, worker, lease id, worker, ... Returns one record per pair, ""
/// where the worker did not hold the lease.
const SETTLE: &str = r#"
local out, gone, ended = {}, {}, {}
for i = 2, #ARGV, 2 do
  local id, worker = ARGV[i], ARGV[i + 1]
  local hit = ''
  if not ended[id] then
    local rec = redis.call('HGET', LEASES, id)
    if rec then
      local task, job, holder, _, progress = parse(rec)
      if holder == worker then
        ended[id] = true
        gone[#gone + 1] = {id, task, job, holder, progress}
        hit = rec
      end
    end
  end
  out[#out + 1] = hit
end
remove_leases(gone, false)
return out
"#;

/// ARGV: prefix, now_ms, max. Returns lease id, record, lease id, record, ...
const TAKE_EXPIRED: &str = r#"
local due = redis.call('ZRANGEBYSCORE', DEADLINES, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out, gone = {}, {}
for _, id in ipairs(due) do
  local rec = redis.call('HGET', LEASES, id)
  if rec then
    local task, job, worker, _, progress = parse(rec)
    gone[#gone + 1] = {id, task, job, worker, progress}
    out[#out + 1] = id
    out[#out + 1] = rec
  else
    redis.call('ZREM', DEADLINES, id)
  end
end
-- A silent holder's copy goes back through a retry; it may take it again.
remove_leases(gone, true)
return out
"#;

/// ARGV: prefix, worker. Returns lease id, record, lease id, record, ...
const REVOKE: &str = r#"
local worker = ARGV[2]
local ids = redis.call('SMEMBERS', worker_key(worker))
table.sort(ids)
local out, gone = {}, {}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', LEASES, id)
  if rec then
    local task, job, holder, _, progress = parse(rec)
    if holder == worker then
      gone[#gone + 1] = {id, task, job, holder, progress}
      out[#out + 1] = id
      out[#out + 1] = rec
    end
  end
end
remove_leases(gone, true)
redis.call('DEL', worker_key(worker))
return out
"#;

/// ARGV: prefix, job.
const DROP_JOB: &str = r#"
local job = ARGV[2]
local ids = redis.call('SMEMBERS', job_key(job, 'leases'))
local gone = {}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', LEASES, id)
  if rec then
    local task, owner, worker, _, progress = parse(rec)
    if owner == job then gone[#gone + 1] = {id, task, job, worker, progress} end
  end
end
remove_leases(gone, false)
redis.call('DEL', job_key(job, 'queue'), job_key(job, 'avoid'), job_key(job, 'avoid_until'),
  job_key(job, 'replicated'), job_key(job, 'holders'), job_key(job, 'confirming'),
  job_key(job, 'leases'),
  job_key(job, 'progress'))
return 0
"#;

struct Scripts {
    lease_tasks: Script,
    enqueue_replicas: Script,
    renew: Script,
    settle: Script,
    take_expired: Script,
    revoke: Script,
    drop_job: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| {
            Script::new(&format!(
                "local MAX_SKIPPED = {MAX_SKIPPED}\n{PRELUDE}{body}"
            ))
        };
        Scripts {
            lease_tasks: script(LEASE_TASKS),
            enqueue_replicas: script(ENQUEUE_REPLICAS),
            renew: script(RENEW),
            settle: script(SETTLE),
            take_expired: script(TAKE_EXPIRED),
            revoke: script(REVOKE),
            drop_job: script(DROP_JOB),
        }
    }

    fn all(&self) -> [&Script; 7] {
        [
            &self.lease_tasks,
            &self.enqueue_replicas,
            &self.renew,
            &self.settle,
            &self.take_expired,
            &self.revoke,
            &self.drop_job,
        ]
    }
}

/// Wake-ups for consumers waiting in this process, fed by the pub/sub listener and by this
/// process' own pushes.
#[derive(Default)]
struct Wake {
    stages: [Notify; 4],
    tasks: Notify,
    /// Whether the subscription is up; while it is not, waiters poll.
    listening: AtomicBool,
}

impl Wake {
    fn everyone(&self) {
        for notify in &self.stages {
            notify.notify_waiters();
        }
        self.tasks.notify_waiters();
    }

    /// How long a waiter may sleep before looking again, at most `wait`.
    fn nap(&self, wait: Duration) -> Duration {
        if self.listening.load(Ordering::Acquire) {
            wait
        } else {
            wait.min(POLL)
        }
    }
}

/// Queues in a Redis server shared by several coordinators. Construct with
/// [`RedisQueues::connect`].
pub struct RedisQueues {
    conn: ConnectionManager,
    prefix: String,
    scripts: Scripts,
    wake: Arc<Wake>,
    listener: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RedisQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueues")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisQueues {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn backend(e: RedisError) -> StorageError {
    StorageError::Backend(format!("redis: {e}"))
}

fn corrupt(what: &str, value: &str) -> StorageError {
    StorageError::Corrupt(format!("redis queue {what}: {value:?}"))
}

/// A lease id as stored: zero-padded so that string order is numeric order.
fn lease_key(id: LeaseId) -> String {
    format!("{:016}", id.0)
}

fn parse_lease(id: &str, rec: &str) -> Result<Lease> {
    let bad = || corrupt("lease", rec);
    let id = id
        .parse()
        .map(LeaseId)
        .map_err(|_| corrupt("lease id", id))?;
    let mut fields = rec.split(' ');
    let mut next = || fields.next().ok_or_else(bad);
    let task = next()?.parse().map(TaskId).map_err(|_| bad())?;
    let job = next()?.parse().map(JobId).map_err(|_| bad())?;
    let worker = next()?.parse().map(WorkerId).map_err(|_| bad())?;
    let expires_at_ms = next()?.parse().map_err(|_| bad())?;
    let progress = next()?.parse::<f64>().map_err(|_| bad())? as f32;
    Ok(Lease {
        id,
        task,
        job,
        worker,
        expires_at_ms,
        progress,
    })
}

/// Pairs of lease id and record, as the scripts return them.
fn parse_lease_pairs(flat: &[String]) -> Result<Vec<Lease>> {
    flat.chunks_exact(2)
        .map(|pair| parse_lease(&pair[0], &pair[1]))
        .collect()
}

fn parse_item(raw: &str) -> Result<Item> {
    let (job, id) = raw.split_once(':').ok_or_else(|| corrupt("item", raw))?;
    Ok(Item {
        job: JobId(job.parse().map_err(|_| corrupt("item", raw))?),
        id: id.parse().map_err(|_| corrupt("item", raw))?,
    })
}

impl RedisQueues {
    /// The key prefix to use when one Redis serves one grid.
    pub const DEFAULT_PREFIX: &'static str = "idlegrid:";

    /// Connects to the Redis server at `url` (`redis://host:port/db`), keeping every key under
    /// `prefix`. The connection is re-established after failures; calls made while it is down
    /// fail with [`StorageError::Backend`]. Needs Redis 6.2 or later.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = Client::open(url).map_err(backend)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT));
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(backend)?;
        check_version(&mut conn).await?;
        let scripts = Scripts::new();
        // Loaded now so that a broken script shows at start-up, not at the first lease.
        for script in scripts.all() {
            script.load_async(&mut conn).await.map_err(backend)?;
        }
        let wake = Arc::new(Wake::default());
        let mut channels = vec![(format!("{prefix}wake:tasks"), None)];
        for stage in Stage::ALL {
            channels.push((format!("{prefix}wake:{}", stage.name()), Some(stage.slot())));
        }
        // Subscribed before returning, so that waiters are woken from the first call on.
        let pubsub = subscribe(&client, &channels).await.map_err(backend)?;
        wake.listening.store(true, Ordering::Release);
        let listener = tokio::spawn(listen(client, pubsub, channels, wake.clone())).abort_handle();
        Ok(RedisQueues {
            conn,
            prefix: prefix.to_string(),
            scripts,
            wake,
            listener,
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn stage_key(&self, stage: Stage) -> String {
        format!("{}stage:{}", self.prefix, stage.name())
    }

    fn job_key(&self, job: JobId, what: &str) -> String {
        format!("{}job:{}:{what}", self.prefix, job.0)
    }

    fn tasks_channel(&self) -> String {
        format!("{}wake:tasks", self.prefix)
    }

    /// Takes up to `max` items now, without waiting.
    /// Adds `values` to the list `key` with `push` (`RPUSH` or `LPUSH`), then wakes the waiters
    /// on `channel`: every coordinator's through Redis, and this one's (`local`) at once.
    async fn push_and_wake(
        &self,
        push: &str,
        key: String,
        values: impl ToRedisArgs + Send,
        channel: String,
        local: &Notify,
    ) -> Result<()> {
        ::redis::pipe()
            .cmd(push)
            .arg(key)
            .arg(values)
            .ignore()
            .cmd("PUBLISH")
            .arg(channel)
            .arg("")
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(backend)?;
        local.notify_waiters();
        Ok(())
    }

    async fn pop_now(&self, stage: Stage, max: usize) -> Result<Option<Vec<Item>>> {
        let key = self.stage_key(stage);
        if max == 0 {
            // As in the memory backend: an empty batch at once if items wait, else wait.
            let len: u64 = ::redis::cmd("LLEN")
                .arg(&key)
                .query_async(&mut self.conn())
                .await
                .map_err(backend)?;
            return Ok((len > 0).then(Vec::new));
        }
        let raw: Option<Vec<String>> = ::redis::cmd("LPOP")
            .arg(&key)
            .arg(max)
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        match raw {
            Some(raw) if !raw.is_empty() => Ok(Some(
                raw.iter().map(|r| parse_item(r)).collect::<Result<_>>()?,
            )),
            _ => Ok(None),
        }
    }
}

/// Refuses servers too old for `LPOP` with a count.
async fn check_version(conn: &mut ConnectionManager) -> Result<()> {
    let info: String = ::redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .map_err(backend)?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("")
        .trim();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (6, 2) {
        return Err(StorageError::Backend(format!(
            "redis {version} is too old: the queues need 6.2 or later"
        )));
    }
    Ok(())
}

/// Forwards wake-up messages to this process' waiters, resubscribing after failures.
async fn listen(
    client: Client,
    mut pubsub: ::redis::aio::PubSub,
    channels: Vec<(String, Option<usize>)>,
    wake: Arc<Wake>,
) {
    loop {
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let name = message.get_channel_name();
            match channels.iter().find(|(c, _)| c == name) {
                Some((_, Some(slot))) => wake.stages[*slot].notify_waiters(),
                Some((_, None)) => wake.tasks.notify_waiters(),
                None => {}
            }
        }
        drop(messages);
        wake.listening.store(false, Ordering::Release);
        tracing::warn!("redis queue wake-ups lost their connection; polling meanwhile");
        pubsub = loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(pubsub) = subscribe(&client, &channels).await {
                break pubsub;
            }
        };
        tracing::info!("redis queue wake-ups subscribed again");
        wake.listening.store(true, Ordering::Release);
        // Anything may have been pushed while the subscription was down.
        wake.everyone();
    }
}

async fn subscribe(
    client: &Client,
    channels: &[(String, Option<usize>)],
) -> Result<::redis::aio::PubSub, RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    for (channel, _) in channels {
        pubsub.subscribe(channel).await?;
    }
    Ok(pubsub)
}

#[async_trait]
impl Queues for RedisQueues {
    async fn push(&self, stage: Stage, items: &[Item]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let raw: Vec<String> = items
            .iter()
            .map(|i| format!("{}:{}", i.job.0, i.id))
            .collect();
        self.push_and_wake(
            "RPUSH",
            self.stage_key(stage),
            raw,
            format!("{}wake:{}", self.prefix, stage.name()),
            &self.wake.stages[stage.slot()],
        )
        .await
    }

    async fn pop(&self, stage: Stage, max: usize, wait: Duration) -> Result<Vec<Item>> {
        let notify = &self.wake.stages[stage.slot()];
        let nap = |left| self.wake.nap(left);
        pop_waiting(notify, wait, nap, || self.pop_now(stage, max)).await
    }

    async fn stage_len(&self, stage: Stage) -> Result<u64> {
        ::redis::cmd("LLEN")
            .arg(self.stage_key(stage))
            .query_async(&mut self.conn())
            .await
            .map_err(backend)
    }

    async fn enqueue_tasks(&self, job: JobId, tasks: &[TaskId], front: bool) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        // LPUSH puts each argument before the previous one: reversed, the tasks keep their order.
        let (cmd, ids): (&str, Vec<i64>) = if front {
            ("LPUSH", tasks.iter().rev().map(|t| t.0).collect())
        } else {
            ("RPUSH", tasks.iter().map(|t| t.0).collect())
        };
        let queue = self.job_key(job, "queue");
        self.push_and_wake(cmd, queue, ids, self.tasks_channel(), &self.wake.tasks)
            .await
    }

    async fn enqueue_replicas(
        &self,
        job: JobId,
        task: TaskId,
        copies: u32,
        exclude: &[WorkerId],
        front: bool,
    ) -> Result<()> {
        if copies == 0 {
            return Ok(());
        }
        let mut call = self.scripts.enqueue_replicas.prepare_invoke();
        call.arg(&self.prefix)
            .arg(job.0)
            .arg(task.0)
            .arg(copies)
            .arg(if front { "1" } else { "0" });
        for worker in exclude {
            call.arg(worker.0);
        }
        call.invoke_async::<()>(&mut self.conn())
            .await
            .map_err(backend)?;
        self.wake.tasks.notify_waiters();
        Ok(())
    }

    async fn enqueue_retry(
        &self,
        job: JobId,
        task: TaskId,
        avoid: WorkerId,
        avoid_for: Duration,
    ) -> Result<()> {
        let until = now_ms() + duration_ms(avoid_for);
        // Write-only, so a transaction suffices; the queue entry comes last so that the
        // avoidance is in place before anyone can lease it.
        ::redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(self.job_key(job, "avoid"))
            .arg(task.0)
            .arg(avoid.0)
            .ignore()
            .cmd("ZADD")
            .arg(self.job_key(job, "avoid_until"))
            .arg(until)
            .arg(task.0)
            .ignore()
            // Its attempt failed: it holds no copy now, and may take one once the avoidance ends.
            .cmd("SREM")
            .arg(self.job_key(job, "holders"))
            .arg(format!("{}:{}", task.0, avoid.0))
            .ignore()
            .cmd("LPUSH")
            .arg(self.job_key(job, "queue"))
            .arg(task.0)
            .ignore()
            .cmd("PUBLISH")
            .arg(self.tasks_channel())
            .arg("")
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(backend)?;
        self.wake.tasks.notify_waiters();
        Ok(())
    }

    async fn release_holders(&self, copies: &[(JobId, TaskId, WorkerId)]) -> Result<()> {
        if copies.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for (job, task, worker) in copies {
            pipe.cmd("SREM")
                .arg(self.job_key(*job, "holders"))
                .arg(format!("{}:{}", task.0, worker.0))
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn lease(
        &self,
        job: JobId,
        worker: WorkerId,
        max: usize,
        hold_at_most: usize,
        ttl: Duration,
        copies: Copies,
    ) -> Result<Vec<Lease>> {
        if max == 0 || hold_at_most == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let expires_at_ms = now + duration_ms(ttl);
        let mut call = self.scripts.lease_tasks.prepare_invoke();
        call.arg(&self.prefix)
            .arg(job.0)
            .arg(worker.0)
            .arg(now)
            .arg(expires_at_ms)
            .arg(max)
            .arg(hold_at_most)
            .arg(if copies == Copies::Confirming {
                "1"
            } else {
                "0"
            });
        let mut candidates = HashSet::with_capacity(max + SPARE_IDS);
        while candidates.len() < max + SPARE_IDS {
            candidates.insert(new_lease_id());
        }
        for id in candidates {
            call.arg(lease_key(id));
        }
        let flat: Vec<String> = call.invoke_async(&mut self.conn()).await.map_err(backend)?;
        flat.chunks_exact(2)
            .map(|pair| {
                Ok(Lease {
                    id: LeaseId(pair[0].parse().map_err(|_| corrupt("lease id", &pair[0]))?),
                    task: TaskId(pair[1].parse().map_err(|_| corrupt("task id", &pair[1]))?),
                    job,
                    worker,
                    expires_at_ms,
                    progress: 0.0,
                })
            })
            .collect()
    }

    async fn wait_for_tasks(&self, wait: Duration) -> Result<()> {
        let _ = tokio::time::timeout(self.wake.nap(wait), self.wake.tasks.notified()).await;
        Ok(())
    }

    async fn renew(
        &self,
        lease: LeaseId,
        worker: WorkerId,
        ttl: Duration,
        progress: Option<f32>,
    ) -> Result<Option<Lease>> {
        let expires_at_ms = now_ms() + duration_ms(ttl);
        // Written as the f64 the memory backend adds up, so sums come out the same.
        let progress = progress
            .filter(|p| p.is_finite())
            .map(|p| f64::from(p.clamp(0.0, 1.0)).to_string())
            .unwrap_or_default();
        let key = lease_key(lease);
        let rec: Option<String> = self
            .scripts
            .renew
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(&key)
            .arg(worker.0)
            .arg(expires_at_ms)
            .arg(progress)
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        rec.map(|rec| parse_lease(&key, &rec)).transpose()
    }

    async fn held(&self, lease: LeaseId, worker: WorkerId) -> Result<Option<Lease>> {
        let key = lease_key(lease);
        let rec: Option<String> = ::redis::cmd("HGET")
            .arg(format!("{}leases", self.prefix))
            .arg(&key)
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        let Some(rec) = rec else { return Ok(None) };
        let lease = parse_lease(&key, &rec)?;
        Ok((lease.worker == worker).then_some(lease))
    }

    async fn settle(&self, leases: &[(LeaseId, WorkerId)]) -> Result<Vec<Option<Lease>>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = leases.iter().map(|(id, _)| lease_key(*id)).collect();
        let mut call = self.scripts.settle.prepare_invoke();
        call.arg(&self.prefix);
        for (key, (_, worker)) in keys.iter().zip(leases) {
            call.arg(key).arg(worker.0);
        }
        let recs: Vec<String> = call.invoke_async(&mut self.conn()).await.map_err(backend)?;
        if recs.len() != leases.len() {
            return Err(StorageError::Backend(format!(
                "redis: settled {} leases of {}",
                recs.len(),
                leases.len()
            )));
        }
        keys.iter()
            .zip(&recs)
            .map(|(key, rec)| {
                if rec.is_empty() {
                    Ok(None)
                } else {
                    parse_lease(key, rec).map(Some)
                }
            })
            .collect()
    }

    async fn take_expired(&self, now_ms: i64, max: usize) -> Result<Vec<Lease>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let flat: Vec<String> = self
            .scripts
            .take_expired
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(now_ms)
            .arg(max)
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        parse_lease_pairs(&flat)
    }

    async fn revoke(&self, worker: WorkerId) -> Result<Vec<Lease>> {
        let flat: Vec<String> = self
            .scripts
            .revoke
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(worker.0)
            .invoke_async(&mut self.conn())
            .await
            .map_err(backend)?;
        parse_lease_pairs(&flat)
    }

    async fn drop_job(&self, job: JobId) -> Result<()> {
        self.scripts
            .drop_job
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(job.0)
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(backend)
    }

    async fn job_depth(&self, job: JobId) -> Result<JobDepth> {
        let (queued, leased, progress): (u64, u64, Option<String>) = ::redis::pipe()
            .atomic()
            .cmd("LLEN")
            .arg(self.job_key(job, "queue"))
            .cmd("SCARD")
            .arg(self.job_key(job, "leases"))
            .cmd("GET")
            .arg(self.job_key(job, "progress"))
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        let leased_progress = match progress {
            Some(p) => p.parse().map_err(|_| corrupt("progress", &p))?,
            None => 0.0,
        };
        Ok(JobDepth {
            queued,
            leased,
            leased_progress,
        })
    }

    async fn job_leases(&self, job: JobId) -> Result<Vec<Lease>> {
        let ids: Vec<String> = ::redis::cmd("SMEMBERS")
            .arg(self.job_key(job, "leases"))
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let recs: Vec<Option<String>> = ::redis::cmd("HMGET")
            .arg(format!("{}leases", self.prefix))
            .arg(&ids)
            .query_async(&mut self.conn())
            .await
            .map_err(backend)?;
        // A lease that ended between the two reads is simply no longer there.
        ids.iter()
            .zip(recs)
            .filter_map(|(id, rec)| rec.map(|rec| parse_lease(id, &rec)))
            .collect()
    }

    async fn leases_held(&self, workers: &[WorkerId]) -> Result<Vec<u64>> {
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for worker in workers {
            pipe.cmd("SCARD")
                .arg(format!("{}worker:{}:leases", self.prefix, worker.0));
        }
        pipe.query_async(&mut self.conn()).await.map_err(backend)
    }
}

//! A closed-loop HTTP/1.1 load generator for loopback benchmarks: a fixed number of
//! keep-alive connections, each sending its next request as soon as the previous answer is
//! read, until a fixed number of requests is done; every request's latency is recorded.
//!
//! Closed loop means the rate is whatever the server sustains, so requests/s and latency
//! are read together: more connections raise both until the server's cores are busy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// One kind of request, sent again and again.
#[derive(Debug, Clone)]
pub struct Template {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// Any other status fails the run: a benchmark of refusals measures nothing.
    pub expect: StatusCode,
}

/// How much load, for how long at most.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    /// Sent first and not measured: connections open, caches fill, the JIT warms up.
    pub warmup: usize,
    pub requests: usize,
    /// The whole scenario (warm-up included) fails if it takes longer.
    pub deadline: Duration,
}

/// What one measured phase did.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    pub requests: usize,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs `plan` against `addr` and summarises the measured requests.
pub async fn run(addr: SocketAddr, template: &Template, plan: Plan) -> anyhow::Result<Summary> {
    let work = async {
        let mut senders = Vec::with_capacity(plan.connections);
        for _ in 0..plan.connections {
            senders.push(connect(addr).await?);
        }
        let (senders, _) = phase(senders, template, plan.warmup).await?;
        let started = Instant::now();
        let (_, latencies) = phase(senders, template, plan.requests).await?;
        summarize(latencies, started.elapsed())
    };
    tokio::time::timeout(plan.deadline, work)
        .await
        .with_context(|| format!("the load did not finish within {:?}", plan.deadline))?
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    // Small requests and answers: without this, Nagle's algorithm adds delayed-ACK waits.
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends when its sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends `count` requests over the connections, each taking the next request number
/// from a shared counter; returns the connections for the next phase and the latencies.
async fn phase(
    senders: Vec<SendRequest<Full<Bytes>>>,
    template: &Template,
    count: usize,
) -> anyhow::Result<(Vec<SendRequest<Full<Bytes>>>, Vec<Duration>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for mut sender in senders {
        let (next, template) = (next.clone(), template.clone());
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            while next.fetch_add(1, Ordering::Relaxed) < count {
                latencies.push(send(&mut sender, &template).await?.0);
            }
            anyhow::Ok((sender, latencies))
        });
    }
    let mut senders = Vec::new();
    let mut latencies = Vec::with_capacity(count);
    while let Some(done) = workers.join_next().await {
        let (sender, mine) = done??;
        senders.push(sender);
        latencies.extend(mine);
    }
    Ok((senders, latencies))
}

/// One request on a connection of its own, for set-up (a token to verify with).
pub async fn once(addr: SocketAddr, template: &Template) -> anyhow::Result<Bytes> {
    let mut sender = connect(addr).await?;
    Ok(send(&mut sender, template).await?.1)
}

/// One request, timed from sending the head to reading the last byte of the body.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    template: &Template,
) -> anyhow::Result<(Duration, Bytes)> {
    let mut request = Request::builder()
        .method(template.method.clone())
        .uri(&template.path)
        .header("host", "127.0.0.1");
    for (name, value) in &template.headers {
        request = request.header(*name, value);
    }
    let request = request.body(Full::new(template.body.clone()))?;
    sender.ready().await?;
    let started = Instant::now();
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let latency = started.elapsed();
    if status != template.expect {
        bail!(
            "{} {} answered {status}, not {}: {}",
            template.method,
            template.path,
            template.expect,
            String::from_utf8_lossy(&body)
        );
    }
    Ok((latency, body))
}

/// Nearest-rank percentiles (the smallest latency at or above which `p` % of requests
/// finished), so every reported value is one a request really took.
pub fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> anyhow::Result<Summary> {
    if latencies.is_empty() {
        bail!("no requests were measured");
    }
    latencies.sort_unstable();
    let seconds = elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let percentile = |p: f64| {
        let rank = (p / 100.0 * latencies.len() as f64).ceil() as usize;
        ms(latencies[rank.clamp(1, latencies.len()) - 1])
    };
    Ok(Summary {
        requests: latencies.len(),
        seconds,
        requests_per_sec: latencies.len() as f64 / seconds.max(f64::EPSILON),
        p50_ms: percentile(50.0),
        p99_ms: percentile(99.0),
        max_ms: ms(latencies[latencies.len() - 1]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank_whatever_the_order() {
        // 1..=100 ms, shuffled: p50 is the 50th value, p99 the 99th.
        let mut values: Vec<u64> = (1..=100).collect();
        values.reverse();
        values.swap(3, 70);
        let summary = summarize(millis(values), Duration::from_secs(2)).expect("a summary");
        assert_eq!(summary.requests, 100);
        assert_eq!(
            (summary.p50_ms, summary.p99_ms, summary.max_ms),
            (50.0, 99.0, 100.0)
        );
        assert_eq!(summary.requests_per_sec, 50.0);
    }

    #[test]
    fn a_slow_tail_shows_in_p99_but_not_in_p50() {
        // 989 fast requests and 11 slow ones: more than 1 % are slow, so p99 is slow.
        let values = std::iter::repeat_n(2, 989).chain(std::iter::repeat_n(40, 11));
        let summary = summarize(millis(values), Duration::from_secs(1)).expect("a summary");
        assert_eq!((summary.p50_ms, summary.p99_ms), (2.0, 40.0));
        // Exactly 1 % slow: the 990th value is still fast.
        let values = std::iter::repeat_n(2, 990).chain(std::iter::repeat_n(40, 10));
        let summary = summarize(millis(values), Duration::from_secs(1)).expect("a summary");
        assert_eq!(summary.p99_ms, 2.0);
    }

    #[test]
    fn one_request_is_every_percentile_and_none_is_an_error() {
        let summary = summarize(millis([7]), Duration::from_millis(7)).expect("a summary");
        assert_eq!(
            (summary.p50_ms, summary.p99_ms, summary.max_ms),
            (7.0, 7.0, 7.0)
        );
        assert!(summarize(Vec::new(), Duration::from_secs(1)).is_err());
    }
}

//! The token endpoint benchmark: the BFF (built with the `server` profile) and an equivalent
//! Node endpoint (bench/node-token-endpoint: express + jose) run as child processes on
//! loopback and take the same load, one at a time: mint and verify throughput and latency,
//! CPU time per request and resident memory, into target/bench/tokens.json.
//!
//! What is compared, so the ratio means something:
//! - Mint is `POST /v1/sessions` on both. The BFF caches the agent's title, so after the
//!   warm-up its mint asks the platform nothing; it still runs its rate limits, metrics,
//!   request ids and tracing spans, which the Node endpoint does not have.
//! - Verify is `GET /v1/conversations/{id}` with an id the token is not bound to. The BFF
//!   has no verify-only route and gets none for a benchmark: on this request it verifies
//!   the token fully and then answers 404 without calling the platform. The Node endpoint
//!   does the same checks and answers the same 404.
//! - Node runs its one event loop; the BFF's runtime has a worker per core. The load
//!   generator shares the same cores, so on a small machine the numbers are a lower bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use secrecy::SecretString;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::load::{self, Plan, Summary, Template};
use crate::stack::DEMO_AGENT_ID;
use crate::tools::Tools;
use crate::{project_root, run};

/// The page the widget tokens are minted for; nothing needs to listen there.
const ORIGIN: &str = "http://127.0.0.1:8000";
/// Mints are bounded by the BFF's own rate limits, which the configuration caps at a burst
/// of 10 000 and 1 000/s: warm-up, measured mints and the verify token stay under the
/// burst, so no mint waits for the limiter and none is refused.
const MINT: Plan = Plan {
    connections: 32,
    warmup: 1_000,
    requests: 8_000,
    deadline: Duration::from_secs(120),
};
const VERIFY: Plan = Plan {
    connections: 32,
    warmup: 2_000,
    requests: 20_000,
    deadline: Duration::from_secs(120),
};
/// How long a started server is left alone before its idle memory is read.
const SETTLE: Duration = Duration::from_secs(1);

/// Builds the servers, runs the benchmark, prints a table and writes `tokens.json`.
pub fn tokens(tools: &Tools, out: &Path) -> anyhow::Result<()> {
    run(tools.command("cargo").args([
        "build",
        "--locked",
        "--profile",
        "server",
        "-p",
        "speaknode-bff",
        "-p",
        "speaknode-sandbox",
    ]))?;
    let bin = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from)
        .join("server");
    std::fs::create_dir_all(out)?;
    let report = crate::runtime()?.block_on(measure(tools, &bin, out))?;
    report.print();
    let path = out.join("tokens.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

#[derive(Serialize)]
struct Report {
    cores: usize,
    verify_route: &'static str,
    mint_plan: PlanDoc,
    verify_plan: PlanDoc,
    results: Vec<Measured>,
    /// BFF ÷ Node: above 1 for requests/s means the BFF is faster; below 1 for latency
    /// and CPU time means it is faster.
    ratios: Vec<Ratio>,
    memory: Vec<Memory>,
}

#[derive(Serialize)]
struct PlanDoc {
    connections: usize,
    warmup: usize,
    requests: usize,
}

impl From<Plan> for PlanDoc {
    fn from(plan: Plan) -> Self {
        Self {
            connections: plan.connections,
            warmup: plan.warmup,
            requests: plan.requests,
        }
    }
}

#[derive(Serialize)]
struct Measured {
    scenario: &'static str,
    server: &'static str,
    #[serde(flatten)]
    summary: Summary,
    /// CPU time the server spent per 1 000 requests (user + system).
    cpu_ms_per_1k: f64,
    /// The same for this process, the load generator: an unoptimised (dev profile) client
    /// that shares the cores with the server, so its share bounds the server's req/s.
    load_generator_cpu_ms_per_1k: f64,
}

#[derive(Serialize)]
struct Ratio {
    scenario: &'static str,
    requests_per_sec: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
}

#[derive(Serialize)]
struct Memory {
    server: &'static str,
    idle_rss_kib: u64,
    after_load_rss_kib: u64,
}

async fn measure(tools: &Tools, bin: &Path, out: &Path) -> anyhow::Result<Report> {
    // The sandbox's demo configuration: it prints its client's secret, made at start-up.
    let mut sandbox = Server::start(
        "sandbox",
        Command::new(bin.join("speaknode-sandbox")).args(["--listen", "127.0.0.1:0"]),
        out,
    )
    .await?;
    let secret = sandbox.line_after("client_secret:").await?;
    sandbox.drain();

    let bff_config = out.join("bff.toml");
    std::fs::write(&bff_config, bff_config_toml(sandbox.addr, &secret))?;
    let mut bff_command = Command::new(bin.join("speaknode-bff"));
    bff_command.arg("--config").arg(&bff_config);
    bff_command.args(["--listen", "127.0.0.1:0"]);
    let mut bff = Server::start("bff", &mut bff_command, out).await?;
    bff.drain();

    let title = speaknode_sandbox::Config::demo(SecretString::from(secret))
        .agents
        .into_iter()
        .find(|agent| agent.id.to_string() == DEMO_AGENT_ID)
        .map(|agent| agent.title)
        .context("the sandbox's demo configuration has no demo agent")?;
    let agents = serde_json::json!({ DEMO_AGENT_ID: { "title": title, "origins": [ORIGIN] } });
    let mut node_command = tools.command("node");
    node_command.arg("bench/node-token-endpoint/server.mjs");
    let mut node_command = Command::from(node_command);
    node_command
        .env("PORT", "0")
        .env("TOKEN_TTL_SECS", "300")
        .env("AGENTS", agents.to_string());
    let mut node = Server::start("node", &mut node_command, out).await?;
    node.drain();

    tokio::time::sleep(SETTLE).await;
    let idle = [bff.rss_kib()?, node.rss_kib()?];

    let mint = mint_template();
    let mut results = Vec::new();
    for server in [&bff, &node] {
        results.push(server.load("mint", &mint, MINT).await?);
    }
    for server in [&bff, &node] {
        let verify = verify_template(&server.token(&mint).await?);
        results.push(server.load("verify", &verify, VERIFY).await?);
    }
    tokio::time::sleep(SETTLE).await;
    let after = [bff.rss_kib()?, node.rss_kib()?];

    let ratios = ["mint", "verify"]
        .into_iter()
        .filter_map(|scenario| {
            let of = |server| {
                results
                    .iter()
                    .find(|m| m.scenario == scenario && m.server == server)
            };
            let (b, n) = (of("bff")?, of("node")?);
            Some(Ratio {
                scenario,
                requests_per_sec: b.summary.requests_per_sec / n.summary.requests_per_sec,
                p50: b.summary.p50_ms / n.summary.p50_ms,
                p99: b.summary.p99_ms / n.summary.p99_ms,
                cpu: b.cpu_ms_per_1k / n.cpu_ms_per_1k,
            })
        })
        .collect();
    let memory = [("bff", 0), ("node", 1)]
        .into_iter()
        .map(|(server, i)| Memory {
            server,
            idle_rss_kib: idle[i],
            after_load_rss_kib: after[i],
        })
        .collect();
    // The children are killed when they drop here (kill_on_drop), on success or error.
    drop((bff, node, sandbox));
    Ok(Report {
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        verify_route: "GET /v1/conversations/{id} with an id the token is not bound to: \
                       full verification, then 404 without a platform call",
        mint_plan: MINT.into(),
        verify_plan: VERIFY.into(),
        results,
        ratios,
        memory,
    })
}

fn mint_template() -> Template {
    Template {
        method: Method::POST,
        path: "/v1/sessions".into(),
        headers: vec![
            ("x-speaknode-widget", "1".into()),
            ("origin", ORIGIN.into()),
            ("content-type", "application/json".into()),
        ],
        body: Bytes::from(serde_json::json!({ "agent_id": DEMO_AGENT_ID }).to_string()),
        expect: StatusCode::CREATED,
    }
}

fn verify_template(token: &str) -> Template {
    Template {
        method: Method::GET,
        path: "/v1/conversations/not-this-tokens-conversation".into(),
        headers: vec![
            ("x-speaknode-widget", "1".into()),
            ("origin", ORIGIN.into()),
            ("authorization", format!("Bearer {token}")),
        ],
        body: Bytes::new(),
        expect: StatusCode::NOT_FOUND,
    }
}

/// A BFF for the sandbox's demo client with limits the benchmark never reaches.
fn bff_config_toml(sandbox: SocketAddr, secret: &str) -> String {
    format!(
        r#"# Written by `cargo xtask bench`: the BFF under load, against the local sandbox.
token_ttl_secs = 300

[upstream]
issuer = "http://{sandbox}/realms/speaknode"
api_base = "http://{sandbox}"
client_id = "speaknode-bff-demo"
client_secret = "{secret}"

[[agents]]
id = "{DEMO_AGENT_ID}"
allowed_origins = ["{ORIGIN}"]

# The highest limits the BFF accepts; the mint plan stays under their burst.
[limits]
per_ip = {{ per_minute = 60000, burst = 10000 }}
per_agent = {{ per_minute = 60000, burst = 10000 }}
global = {{ per_minute = 60000, burst = 10000 }}
"#
    )
}

/// A child process serving on loopback. Dropping it kills it (`kill_on_drop`), so an
/// error anywhere in the benchmark leaves no server running.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    pid: u32,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    _child: Child,
}

impl Server {
    /// Starts `command` with stderr going to `{out}/{name}.log` and waits for the
    /// `listening on http://ADDR` line every server here prints on stdout.
    async fn start(name: &'static str, command: &mut Command, out: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(out.join(format!("{name}.log")))?;
        let mut child = command
            .current_dir(project_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the {name}"))?;
        let pid = child.id().context("the child has no pid")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut server = Self {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid,
            stdout: Some(BufReader::new(stdout).lines()),
            _child: child,
        };
        let addr = server.line_after("listening on http://").await?;
        server.addr = addr
            .parse()
            .with_context(|| format!("the {name} listens on {addr:?}"))?;
        Ok(server)
    }

    /// The rest of the first stdout line that starts with `prefix`.
    async fn line_after(&mut self, prefix: &str) -> anyhow::Result<String> {
        let name = self.name;
        let lines = self.stdout.as_mut().context("stdout is drained")?;
        let find = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok(rest.trim().to_owned());
                }
            }
            bail!("the {name} exited before printing {prefix:?}; see target/bench/{name}.log")
        };
        tokio::time::timeout(Duration::from_secs(30), find)
            .await
            .with_context(|| format!("the {name} did not print {prefix:?} within 30 s"))?
    }

    /// Reads the rest of stdout in the background, so a chatty child never blocks on a
    /// full pipe.
    fn drain(&mut self) {
        if let Some(mut lines) = self.stdout.take() {
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
    }

    /// Resident memory from /proc/{pid}/status.
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS for the {}", self.name))
    }

    /// Runs one scenario against this server.
    async fn load(
        &self,
        scenario: &'static str,
        template: &Template,
        plan: Plan,
    ) -> anyhow::Result<Measured> {
        eprintln!(
            "{scenario} on the {}: {} connections, {} + {} requests",
            self.name, plan.connections, plan.warmup, plan.requests
        );
        let pid = self.pid.to_string();
        let before = [cpu_time(&pid)?, cpu_time("self")?];
        let summary = load::run(self.addr, template, plan)
            .await
            .with_context(|| format!("{scenario} on the {}", self.name))?;
        // Warm-up requests cost CPU too, so the CPU time is divided by every request sent.
        let total = (plan.warmup + plan.requests) as f64;
        let per_1k = |now: Duration, before: Duration| {
            now.saturating_sub(before).as_secs_f64() * 1e3 / total * 1e3
        };
        Ok(Measured {
            scenario,
            server: self.name,
            summary,
            cpu_ms_per_1k: per_1k(cpu_time(&pid)?, before[0]),
            load_generator_cpu_ms_per_1k: per_1k(cpu_time("self")?, before[1]),
        })
    }

    /// Mints one token with `mint` and returns it.
    async fn token(&self, mint: &Template) -> anyhow::Result<String> {
        let body = load::once(self.addr, mint).await?;
        let grant: serde_json::Value = serde_json::from_slice(&body)?;
        grant["token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the {} minted no token", self.name))
    }
}

/// User plus system CPU time so far of `/proc/{pid}` (`self` for this process), from its
/// `stat` fields 14 and 15.
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // Field 14 is the 12th after the name; Linux counts in USER_HZ, 100 per second.
    let (user, system) = ticks(11).zip(ticks(12)).context("unreadable /proc stat")?;
    Ok(Duration::from_millis((user + system) * 10))
}

impl Report {
    fn print(&self) {
        println!();
        println!(
            "{:<8} {:<6} {:>10} {:>9} {:>9} {:>9} {:>13} {:>13}",
            "", "server", "req/s", "p50 ms", "p99 ms", "max ms", "CPU ms/1k req", "load gen CPU"
        );
        for m in &self.results {
            let s = &m.summary;
            println!(
                "{:<8} {:<6} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>13.1} {:>13.1}",
                m.scenario,
                m.server,
                s.requests_per_sec,
                s.p50_ms,
                s.p99_ms,
                s.max_ms,
                m.cpu_ms_per_1k,
                m.load_generator_cpu_ms_per_1k
            );
        }
        println!();
        println!(
            "{:<8} {:>10} {:>9} {:>9} {:>13}   (BFF ÷ Node: req/s above 1, the rest below 1 favour the BFF)",
            "ratio", "req/s", "p50", "p99", "CPU/req"
        );
        for r in &self.ratios {
            println!(
                "{:<8} {:>10.2} {:>9.2} {:>9.2} {:>13.2}",
                r.scenario, r.requests_per_sec, r.p50, r.p99, r.cpu
            );
        }
        println!();
        println!(
            "{:<8} {:>14} {:>18}",
            "memory", "idle RSS MiB", "after load RSS MiB"
        );
        for m in &self.memory {
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "{:<8} {:>14.1} {:>18.1}",
                m.server,
                mib(m.idle_rss_kib),
                mib(m.after_load_rss_kib)
            );
        }
        println!();
        println!("verify = {}", self.verify_route);
        println!(
            "{} cores, shared by the servers and the load generator",
            self.cores
        );
    }
}

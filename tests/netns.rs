//! `shadowtap run` capturing live on one end of a veth pair between two network namespaces that
//! the test creates: real TLS clients (curl) talk to a real TLS server (openssl s_server) under
//! the SNIs of catalogued services, and `/metrics`, read from inside the client namespace, counts
//! their flows per department and policy status without any address or name of a host. The
//! flows end on a quiet link, so their accounting relies on the daemon's wall-clock flow timeouts.
//!
//! Needs root (namespaces, veth, capture) and iproute2, openssl and curl; where `ip netns` is not
//! usable it prints "skipping: ..." and returns. Every namespace, link, process and temporary
//! file it creates is removed by a guard, also when an assertion fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};


/// Port of the sensor's HTTP server on the client namespace's own loopback (a fresh namespace:
/// nothing else listens there).
const HTTP_PORT: u16 = 9842;

/// Everything the test creates, torn down in reverse order on drop (also on panic).
struct Lab {
    cli: String,
    srv: String,
    veth_cli: String,
    veth_srv: String,
    /// The /24 is 10.199.<net>.0.
    net: u8,
    dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Lab {
        let pid = std::process::id();
        Lab {
            cli: format!("st-cli-{pid}"),
            srv: format!("st-srv-{pid}"),
            // Interface names hold at most 15 bytes; a pid has at most 7 digits.
            veth_cli: format!("stc{pid}"),
            veth_srv: format!("sts{pid}"),
            net: (pid % 250) as u8 + 1,
            dir: std::env::temp_dir().join(format!("shadowtap-netns-{pid}")),
            namespaces: Vec::new(),
            children: Vec::new(),
        }
    }

    fn cli_addr(&self) -> String {
        format!("10.199.{}.1", self.net)
    }

    fn srv_addr(&self) -> String {
        format!("10.199.{}.2", self.net)
    }

    /// Adds a namespace (remembered for the teardown before it exists, so a half-made one goes).
    fn add_namespace(&mut self, name: &str) {
        self.namespaces.push(name.to_string());
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    /// `ip netns exec NS ARGS...` (the command replaces `ip` in the same process).
    fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    /// A child process killed and reaped at teardown; returns its index.
    fn spawn(&mut self, mut cmd: Command) -> usize {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    /// `curl` inside the client namespace, at most 10 s.
    fn curl(&self, args: &[&str]) -> Output {
        self.exec(&self.cli, &["curl", "-s", "--max-time", "10"]).args(args).stdin(Stdio::null()).output().expect("run curl")
    }

    /// GET `path` from the sensor, from inside the client namespace.
    fn get(&self, path: &str) -> Option<String> {
        let out = self.curl(&["--fail", &format!("http://127.0.0.1:{HTTP_PORT}{path}")]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn sensor_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sensor.log")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace destroys the veth end inside it, and with it its peer.
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
        // In case the pair was left in the root namespace by a failure half-way.
        for link in [&self.veth_cli, &self.veth_srv] {
            let _ = Command::new("ip").args(["link", "del", link]).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `ip ARGS...` and panics with its stderr if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Polls `f` every `every` until it returns Some or `limit` has passed.
fn wait_for<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Lines of `metric` (exactly that name) whose labels include every `labels` pair.
fn series<'a>(body: &'a str, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a str> {
    body.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .collect()
}

/// Sum of the values of those lines (None when there are none).
fn total(body: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines = series(body, metric, labels);
    (!lines.is_empty()).then(|| lines.iter().map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap()).sum())
}

/// The bundled configuration with the catalog at its absolute path and one more department,
/// "research", over the test's /24 (the bundled departments stay: the policy names them); its
/// minimum group size is 1.
fn config(net: u8) -> String {
    let cfg = common::bundled_config();
    // Entries of the top-level [[department]] array must come before the first plain table.
    let at = cfg.find("\n[departments]").expect("the bundled config has a [departments] table");
    assert!(cfg[..at].contains("[[department]]") && !cfg[at..].contains("[[department]]"));
    let ours = format!("\n[[department]]\nid = \"research\"\nname = \"Research\"\ncidrs = [\"10.199.{net}.0/24\"]\n");
    let cfg = format!("{}{}{}", &cfg[..at], ours, &cfg[at..]);
    assert!(cfg.contains("min_group_size = 1"), "the bundled config shows groups of one host");
    cfg
}

fn openssl_cert(dir: &Path) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test", "-days", "1", "-keyout", "k", "-out", "c"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn live_capture_on_a_veth_counts_real_tls_clients_per_department() {
    if !is_root() {
        eprintln!("skipping: network namespaces need root");
        return;
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!("skipping: `ip netns` is not usable here: {}", String::from_utf8_lossy(&o.stderr));
            return;
        }
        Err(e) => {
            eprintln!("skipping: `ip netns` is not usable here: {e}");
            return;
        }
    }

    let mut lab = Lab::new();
    let _ = std::fs::remove_dir_all(&lab.dir);
    std::fs::create_dir_all(&lab.dir).unwrap();

    // Two namespaces joined by a veth pair, created with its ends already inside them.
    let (cli, srv) = (lab.cli.clone(), lab.srv.clone());
    lab.add_namespace(&cli);
    lab.add_namespace(&srv);
    ip(&["link", "add", &lab.veth_cli, "netns", &cli, "type", "veth", "peer", "name", &lab.veth_srv, "netns", &srv]);
    ip(&["-n", &cli, "addr", "add", &format!("{}/24", lab.cli_addr()), "dev", &lab.veth_cli]);
    ip(&["-n", &srv, "addr", "add", &format!("{}/24", lab.srv_addr()), "dev", &lab.veth_srv]);
    ip(&["-n", &cli, "link", "set", &lab.veth_cli, "up"]);
    ip(&["-n", &srv, "link", "set", &lab.veth_srv, "up"]);

    // A TLS server in the server namespace, with a self-signed certificate.
    openssl_cert(&lab.dir);
    let mut server = lab.exec(&srv, &["openssl", "s_server", "-accept", "443", "-cert", "c", "-key", "k", "-www", "-quiet"]);
    server.current_dir(&lab.dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let server = lab.spawn(server);
    let listening = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        let out = lab.exec(&srv, &["ss", "-Hltn", "sport", "=", ":443"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).contains(":443").then_some(())
    });
    assert!(listening.is_some(), "openssl s_server does not listen on 443 within 10 s");
    assert!(lab.children[server].try_wait().unwrap().is_none(), "openssl s_server exited");

    // The sensor, capturing on the client's end of the pair, serving on the namespace's loopback.
    let cfg_path = lab.dir.join("config.toml");
    std::fs::write(&cfg_path, config(lab.net)).unwrap();
    let log = std::fs::File::create(lab.dir.join("sensor.log")).unwrap();
    let mut sensor = lab.exec(&cli, &[env!("CARGO_BIN_EXE_shadowtap"), "run", "--config"]);
    sensor
        .arg(&cfg_path)
        .args(["--interface", &lab.veth_cli, "--listen", &format!("127.0.0.1:{HTTP_PORT}")])
        .current_dir(&lab.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let sensor = lab.spawn(sensor);
    let healthy = wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        if lab.children[sensor].try_wait().unwrap().is_some() {
            return Some(String::new()); // exited: fail now, with its log
        }
        lab.get("/healthz")
    });
    assert_eq!(healthy.as_deref(), Some("ok\n"), "no /healthz within 30 s; sensor log:\n{}", lab.sensor_log());
    // The capture is open once the live loop publishes the interface's libpcap statistics.
    let capture_line = format!("shadowtap_capture_received_packets_total{{interface=\"{}\"}}", lab.veth_cli);
    let capturing = wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        lab.get("/metrics").filter(|b| b.contains(&capture_line))
    });
    assert!(
        capturing.is_some(),
        "within 15 s the sensor never published state with the capture on {} open (the live loop must publish \
         about once a second even while the link is quiet); sensor log:\n{}",
        lab.veth_cli,
        lab.sensor_log()
    );
    assert!(lab.children[sensor].try_wait().unwrap().is_none(), "the sensor exited; log:\n{}", lab.sensor_log());

    // Real TLS clients under catalogued names, each connection completed and closed.
    for host in ["web.whatsapp.com", "www.dropbox.com"] {
        for _ in 0..2 {
            let out = lab.curl(&["-k", "--resolve", &format!("{host}:443:{}", lab.srv_addr()), &format!("https://{host}/")]);
            assert!(out.status.success(), "curl https://{host}/ failed: {}", String::from_utf8_lossy(&out.stderr));
            assert!(!out.stdout.is_empty(), "s_server -www answers with a page");
        }
    }

    // The link is now quiet: the closed flows end on the daemon's wall-clock timeout sweep
    // (5 s after the close, swept every 5 s) and show up at the next publication.
    let research = ("department", "research");
    let body = wait_for(Duration::from_secs(30), Duration::from_millis(500), || {
        let body = lab.get("/metrics")?;
        let wa = total(&body, "shadowtap_flows_total", &[research, ("service", "whatsapp")]).unwrap_or(0.0);
        let db = total(&body, "shadowtap_flows_total", &[research, ("service", "dropbox")]).unwrap_or(0.0);
        (wa >= 2.0 && db >= 2.0).then_some(body)
    });
    let Some(body) = body else {
        panic!(
            "the flows were not accounted within 30 s of a quiet link\nmetrics:\n{}\nsensor log:\n{}",
            lab.get("/metrics").unwrap_or_default(),
            lab.sensor_log()
        );
    };

    eprintln!("research's flows:\n{}", series(&body, "shadowtap_flows_total", &[research]).join("\n"));
    let wa = series(&body, "shadowtap_flows_total", &[research, ("service", "whatsapp")]);
    assert!(wa.iter().all(|l| l.contains("status=\"unsanctioned\"")), "WhatsApp is unsanctioned for research: {wa:?}");
    let db = series(&body, "shadowtap_flows_total", &[research, ("service", "dropbox")]);
    assert!(db.iter().all(|l| l.contains("status=\"unsanctioned\"")), "Dropbox is sanctioned only for finance: {db:?}");
    assert_eq!(total(&body, "shadowtap_flows_total", &[research, ("service", "whatsapp")]), Some(2.0), "{body}");
    assert_eq!(total(&body, "shadowtap_flows_total", &[research, ("service", "dropbox")]), Some(2.0), "{body}");
    assert_eq!(
        total(&body, "shadowtap_department_active_hosts", &[research, ("window", "1h")]),
        Some(1.0),
        "one client host in research\n{body}"
    );
    assert!(total(&body, "shadowtap_packets_total", &[]).unwrap() > 0.0, "{body}");
    assert!(total(&body, "shadowtap_capture_received_packets_total", &[("interface", &lab.veth_cli)]).unwrap() > 0.0, "{body}");
    // Privacy: neither the hosts' addresses nor the names they asked for appear in any metric.
    for needle in ["10.199.", "web.whatsapp.com", "www.dropbox.com"] {
        assert!(!body.contains(needle), "metrics contain {needle}:\n{body}");
    }

    // A clean stop on SIGTERM, within 10 s (`ip netns exec` replaced itself by the sensor).
    let pid = lab.children[sensor].id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t = Instant::now();
    let status = loop {
        if let Some(st) = lab.children[sensor].try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no clean stop within 10 s of SIGTERM; log:\n{}", lab.sensor_log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status} after SIGTERM; log:\n{}", lab.sensor_log());
    let log = lab.sensor_log();
    assert!(!log.contains("error"), "the sensor reported an error:\n{log}");
}

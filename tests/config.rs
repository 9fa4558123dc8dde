//! Configuration, catalog and policy through the real binary: `check` reports problems with
//! file and line, `explain` shows what matches, `inspect --config` attributes flows of `pcaps/`
//! to services, departments and statuses, and SIGHUP swaps the configuration atomically.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{inspect, root, s};

const CATALOG: &str = r#"
[[service]]
id = "whatsapp"
name = "WhatsApp"
vendor = "Meta Platforms, Inc."
vendor_country = "US"
category = "messaging"
e2ee = true
domains = ["whatsapp.net", "whatsapp.com"]
markers = ["whatsapp-noise"]
[[service.channel]]
id = "media"
domains = ["mmg.whatsapp.net"]

[[service]]
id = "dropbox"
name = "Dropbox"
vendor = "Dropbox, Inc."
vendor_country = "US"
category = "file-sharing"
domains = ["dropbox.com"]

[[service]]
id = "google-drive"
name = "Google Drive"
vendor = "Google LLC"
vendor_country = "US"
category = "file-sharing"
hosts = ["drive.google.com"]

[[service]]
id = "wetransfer"
name = "WeTransfer"
vendor = "WeTransfer B.V."
vendor_country = "NL"
category = "file-sharing"
domains = ["wetransfer.com"]
"#;

const CONFIG: &str = r#"
catalog = "services"
[[department]]
id = "finance"
cidrs = ["127.0.0.0/8"]
[[department]]
id = "legal"
cidrs = ["::1/128"]
[policy]
sanctioned = ["dropbox"]
[[exemption]]
department = "legal"
service = "google-drive"
reason = "court filings portal"
approver = "CISO"
start = 2026-01-01
expires = 2099-12-31
"#;

/// A temporary folder with `config.toml` and `services/test.toml`.
struct Setup(PathBuf);

impl Setup {
    fn new(name: &str, config: &str, catalog: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("shadowtap-cfg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("services")).unwrap();
        std::fs::write(dir.join("config.toml"), config).unwrap();
        std::fs::write(dir.join("services/test.toml"), catalog).unwrap();
        Setup(dir)
    }
    fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shadowtap(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap")).args(args).arg("--config").arg(config).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn check_accepts_a_valid_configuration() {
    let setup = Setup::new("ok", CONFIG, CATALOG);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("4 services in 1 files") && out.contains("2 departments") && out.ends_with("ok\n"), "{out}");
}

#[test]
fn check_reports_every_problem_with_file_and_line() {
    let catalog = format!(
        "{CATALOG}\n[[service]]\nid = \"dropbox\"\nname = \"x\"\nvendor = \"x\"\nvendor_country = \"US\"\ncategory = \"file-sharing\"\n"
    );
    let setup = Setup::new("dup", CONFIG, &catalog);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("services/test.toml:40: duplicate service id \"dropbox\""), "{out}");

    let bad = CONFIG.replace("127.0.0.0/8", "127.0.0.0/40").replace("expires = 2099-12-31", "expires = 2020-12-31").replace("start = 2026-01-01", "start = 2020-01-01");
    let setup = Setup::new("cidr", &bad, CATALOG);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("config.toml:5: finance: invalid CIDR"), "{out}");

    let expired = CONFIG.replace("expires = 2099-12-31", "expires = 2020-12-31").replace("start = 2026-01-01", "start = 2020-01-01");
    let setup = Setup::new("expired", &expired, CATALOG);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(0), "an expired exemption is a warning: {out}");
    assert!(out.contains("warning: ") && out.contains("config.toml:17: exemption for google-drive in legal has expired"), "{out}");
    assert!(out.ends_with("1 warning(s)\nok\n"), "{out}");
    let (code, out) = shadowtap(&["check", "--strict"], &setup.config());
    assert_eq!(code, Some(1), "--strict fails on warnings: {out}");
    assert!(out.contains("config.toml:17: exemption for google-drive in legal has expired"), "{out}");

    let host_bits = CONFIG.replace("127.0.0.0/8", "127.0.0.1/8");
    let setup = Setup::new("host-bits", &host_bits, CATALOG);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(0), "host bits are a warning: {out}");
    assert!(out.contains("warning: ") && out.contains("config.toml:5: finance: \"127.0.0.1/8\" has host bits set: used as 127.0.0.0/8"), "{out}");

    let unknown = CONFIG.replace("[policy]", "[policy]\ncolour = \"red\"");
    let setup = Setup::new("unknown", &unknown, CATALOG);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("config.toml:10:") && out.contains("colour"), "{out}");

    let store = format!("{CONFIG}\n[store]\nretention_days = 400\nkeep_forever = true\n");
    let setup = Setup::new("store-key", &store, CATALOG);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("config.toml:21: unknown field `keep_forever`"), "{out}");
    let store = format!("{CONFIG}\n[store]\nretention_days = 0\nkey_grace_days = 3\n");
    let setup = Setup::new("store-zero", &store, CATALOG);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("store.retention_days must be at least 1"), "{out}");

    let conflict = format!("{CATALOG}\n[[service]]\nid = \"fake\"\nname = \"x\"\nvendor = \"x\"\nvendor_country = \"US\"\ncategory = \"other\"\ndomains = [\"wetransfer.com\"]\n");
    let setup = Setup::new("conflict", CONFIG, &conflict);
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("wetransfer.com is already listed by wetransfer") && out.contains("conflicting patterns"), "{out}");
}

#[test]
fn explain_shows_service_rule_and_status() {
    let setup = Setup::new("explain", CONFIG, CATALOG);
    let (code, out) = shadowtap(&["explain", "MMG.whatsapp.net"], &setup.config());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("matches \"mmg.whatsapp.net\": whatsapp (WhatsApp), channel media, category messaging"), "{out}");
    assert!(out.contains("status in finance: unsanctioned"), "{out}");
    let (_, out) = shadowtap(&["explain", "drive.google.com"], &setup.config());
    assert!(out.contains("status in legal: exempted") && out.contains("status in finance: unsanctioned"), "{out}");
    let (_, out) = shadowtap(&["explain", "127.0.0.1"], &setup.config());
    assert!(out.contains("department: finance"), "{out}");
}

#[test]
fn inspect_attributes_flows_to_services_departments_and_statuses() {
    let setup = Setup::new("inspect", CONFIG, CATALOG);
    let cfg = setup.config();
    let cfg = cfg.to_str().unwrap();
    let p = |f: &str| root().join("pcaps").join(f);
    let run = inspect(
        &[&p("quic-chromium.pcap"), &p("dns-then-tls.pcap"), &p("whatsapp-noise.pcap"), &p("http-host.pcap"), &p("curl-ipv6.pcap"), &p("python-ssl.pcap")],
        &["--config", cfg],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let find = |cap: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        run.records.iter().find(|r| s(r, "capture") == Some(cap) && pred(r)).unwrap_or_else(|| panic!("{cap}: {}", run.stdout)).clone()
    };
    let quic = find("quic-chromium.pcap", &|_| true);
    assert_eq!((s(&quic, "service"), s(&quic, "service_signal"), s(&quic, "status")), (Some("whatsapp"), Some("quic_sni"), Some("unsanctioned")));
    assert_eq!(s(&quic, "department"), Some("finance"));
    let wa = find("dns-then-tls.pcap", &|r| s(r, "app") == Some("whatsapp"));
    assert_eq!((s(&wa, "service"), s(&wa, "service_signal")), (Some("whatsapp"), Some("dns")), "the DNS answer outranks the marker");
    let dns = find("dns-then-tls.pcap", &|r| s(r, "app") == Some("dns"));
    assert!(dns["service"].is_null(), "a resolver flow is not WhatsApp");
    let noise = find("whatsapp-noise.pcap", &|_| true);
    assert_eq!((s(&noise, "service"), s(&noise, "service_signal")), (Some("whatsapp"), Some("marker")));
    let host = find("http-host.pcap", &|r| s(r, "app") == Some("http"));
    assert_eq!((s(&host, "service"), s(&host, "service_signal")), (Some("wetransfer"), Some("http_host")));
    let legal = find("curl-ipv6.pcap", &|_| true);
    assert_eq!((s(&legal, "service"), s(&legal, "department"), s(&legal, "status")), (Some("google-drive"), Some("legal"), Some("exempted")));
    let dropbox = find("python-ssl.pcap", &|r| s(r, "sni") == Some("www.dropbox.com"));
    assert_eq!(s(&dropbox, "status"), Some("sanctioned"));
}

#[test]
fn sighup_swaps_the_configuration_and_rejects_a_bad_one() {
    let setup = Setup::new("hup", CONFIG, CATALOG);
    let pcap = std::fs::read(root().join("pcaps/curl-tls13.pcap")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["inspect", "--stats", "--config"])
        .arg(setup.config())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let hup = |pid: u32| assert!(Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap().success());
    let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
    // Header and a first part, then an invalid configuration and SIGHUP, then more packets.
    let third = pcap.len() / 3;
    stdin.write_all(&pcap[..third]).unwrap();
    pause();
    std::fs::write(setup.config(), CONFIG.replace("[policy]", "[policy]\nnonsense = 1")).unwrap();
    hup(child.id());
    pause();
    stdin.write_all(&pcap[third..2 * third]).unwrap();
    pause();
    std::fs::write(setup.config(), CONFIG.replace("sanctioned = [\"dropbox\"]", "sanctioned = [\"whatsapp\"]")).unwrap();
    hup(child.id());
    pause();
    stdin.write_all(&pcap[2 * third..]).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("reload rejected; the previous configuration stays in force"), "{err}");
    assert!(err.contains("configuration reloaded (SIGHUP)"), "{err}");
    assert!(err.contains("config_reloads 1") && err.contains("config_reload_failures 1"), "{err}");
    // Records are written at the end of the capture, under the configuration then in force.
    let text = String::from_utf8(out.stdout).unwrap();
    let wa: serde_json::Value = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find(|r| r["sni"] == "web.whatsapp.com").unwrap();
    assert_eq!(wa["status"], "sanctioned");
}

#[test]
fn mapping_file_tenants_and_absent_geoip() {
    let catalog = format!(
        "{CATALOG}\n[[service]]\nid = \"m365\"\nname = \"Microsoft 365\"\nvendor = \"Microsoft\"\nvendor_country = \"US\"\ncategory = \"corporate-suite\"\ncorporate = true\ntenant_suffixes = [\"sharepoint.com\"]\ndomains = [\"sharepoint.com\"]\n"
    );
    let config = CONFIG.replace("sanctioned = [\"dropbox\"]", "sanctioned = [\"dropbox\", \"m365\"]")
        + "geoip_asn = \"missing-asn.mmdb\"\n[departments]\nmapping_file = \"leases.csv\"\n[tenants]\nm365 = [\"contoso\"]\n";
    // geoip_asn must precede the tables: move it to the top.
    let config = format!("geoip_asn = \"missing-asn.mmdb\"\n{}", config.replace("geoip_asn = \"missing-asn.mmdb\"\n", ""));
    let setup = Setup::new("tenants", &config, &catalog);
    std::fs::write(setup.0.join("leases.csv"), "# address,department\n10.9.8.7,legal\n").unwrap();
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ASN database not loaded") && out.contains("ASN signal off"), "{out}");
    let (_, out) = shadowtap(&["explain", "10.9.8.7"], &setup.config());
    assert!(out.contains("department: legal"), "the mapping file places the address: {out}");
    let (_, out) = shadowtap(&["explain", "contoso-my.sharepoint.com"], &setup.config());
    assert!(out.contains("tenant: contoso (own)") && out.contains("status in finance: sanctioned"), "{out}");
    let (_, out) = shadowtap(&["explain", "fabrikam.sharepoint.com"], &setup.config());
    assert!(out.contains("tenant: fabrikam (foreign)") && out.contains("status in finance: unsanctioned"), "{out}");
    std::fs::write(setup.0.join("leases.csv"), "10.9.8.7,nowhere\n").unwrap();
    let (code, out) = shadowtap(&["check"], &setup.config());
    assert_eq!(code, Some(1));
    assert!(out.contains("leases.csv:1: unknown department \"nowhere\""), "{out}");
}

#[test]
fn services_lists_the_catalog_as_a_table() {
    let setup = Setup::new("services", CONFIG, CATALOG);
    let (code, out) = shadowtap(&["services"], &setup.config());
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("NAME") && lines[0].contains("CATEGORY") && lines[0].contains("VENDOR") && lines[0].ends_with("COUNTRY"), "{out}");
    assert!(out.ends_with("4 services\n"), "{out}");
    let dropbox = lines.iter().find(|l| l.starts_with("dropbox ")).unwrap_or_else(|| panic!("{out}"));
    assert!(dropbox.contains("file-sharing"), "{out}");
    let (code, out) = shadowtap(&["services", "--category", "file-sharing"], &setup.config());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.lines().skip(1).take_while(|l| !l.ends_with(" services")).all(|l| l.contains("file-sharing")), "{out}");
    let (code, out) = shadowtap(&["services", "--category", "file-shareing"], &setup.config());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("did you mean \"file-sharing\"?"), "{out}");
}

//! The Debian package of `[package.metadata.deb]` in Cargo.toml, built with cargo-deb and read
//! back with dpkg-deb (see docs/deployment.md for the layout):
//!
//! 1. `dpkg-deb -c`: every path of the install layout is in it with its mode: the binary,
//!    the packaged configuration and `/etc/default/shadowtap`, the catalog (every file of
//!    `rules/services/`), the dashboards and their provisioning, the Prometheus rules, the
//!    documentation, the systemd unit and the sysusers.d file.
//! 2. `dpkg-deb -I`: the control fields (Depends names libpcap and a sysusers provider), the
//!    conffiles, and maintainer scripts that create the user and neither enable nor start the
//!    unit at install.
//! 3. The unpacked files: the packaged configuration passes `shadowtap check` against the
//!    packaged catalog; `systemd-analyze verify` accepts the unit without a warning and it
//!    carries the hardening of docs/deployment.md; `systemd-sysusers` (into a scratch root)
//!    creates the `shadowtap` user from the sysusers.d file.
//!
//! The package is made from the binary this test run already built (`cargo deb --no-build`
//! with a scratch target directory whose `release/shadowtap` is that binary, and `--fast`
//! compression), so the test takes seconds instead of a release build's minutes: it checks the
//! packaging, not the optimised binary. A release package is `cargo deb`.
//!
//! Needs cargo-deb and dpkg-deb, which `.ci/test` installs (cargo-deb with `cargo install`, the
//! Debian packages `dpkg-dev` and `systemd`). Where cargo-deb or dpkg-deb is missing the test is
//! skipped with a message on standard error, except in CI (the `CI` environment variable set),
//! where it fails.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::root;
use common::stack::{on_path, TempDir};

/// Runs a command; panics with its output unless it exits 0. Returns stdout and stderr.
fn run(what: &str, cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed ({}): {cmd:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    (stdout, stderr)
}

/// A tool the test needs beyond cargo-deb and dpkg-deb (panics when it is missing).
fn tool(name: &str, package: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!("`{name}` must be on PATH for this test: run .ci/test, which installs the Debian package `{package}`")
    })
}

/// cargo-deb and dpkg-deb, or `None` (after saying so) when one is missing outside CI.
fn packaging_tools() -> Option<(PathBuf, PathBuf)> {
    let cargo_deb = on_path("cargo-deb");
    let dpkg_deb = on_path("dpkg-deb");
    if let (Some(c), Some(d)) = (&cargo_deb, &dpkg_deb) {
        return Some((c.clone(), d.clone()));
    }
    let missing: Vec<&str> = [("cargo-deb", &cargo_deb), ("dpkg-deb", &dpkg_deb)]
        .into_iter()
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| n)
        .collect();
    let missing = missing.join(" and ");
    let how = ".ci/test installs them: `cargo install cargo-deb --locked`, Debian packages dpkg-dev and systemd";
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("CI must build the Debian package, but {missing} is not on PATH. {how}.");
    }
    // Straight to the process's standard error, past the test harness's output capture, so that
    // a skip is visible in a plain `cargo test`.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED tests/package.rs (the Debian package): {missing} is not on PATH. {how}; in CI (CI set) this test runs."
    );
    None
}

/// `path -> (mode string, size)` of `dpkg-deb -c` (paths as listed: `./usr/bin/shadowtap`).
fn contents(listing: &str) -> BTreeMap<String, String> {
    listing
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let mode = f.next()?.to_string();
            let path = f.nth(4)?.to_string();
            Some((path, mode))
        })
        .collect()
}

/// The file names of `dir` ending in `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}

/// One control field's value (continuation lines joined).
fn field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} field in dpkg-deb -I:\n{info}"))
}

#[test]
fn debian_package_has_the_install_layout_and_a_valid_unit() {
    let Some((cargo_deb, dpkg_deb)) = packaging_tools() else { return };
    let started = std::time::Instant::now();
    let tmp = TempDir::new();

    // 1. Build the package from this run's binary: a scratch target directory whose
    //    release/shadowtap is it (cargo-deb maps the `target/release/` of the assets there).
    let target = tmp.0.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_shadowtap"), target.join("release").join("shadowtap")).unwrap();
    let deb = tmp.0.join("shadowtap.deb");
    let (_, warnings) = run(
        "cargo deb",
        Command::new(&cargo_deb)
            .current_dir(root())
            .env("CARGO_TARGET_DIR", &target)
            .arg("deb")
            .arg("--manifest-path")
            .arg(root().join("Cargo.toml"))
            .args(["--no-build", "--locked", "--fast", "--output"])
            .arg(&deb),
    );
    eprintln!("cargo deb ({:.1?}):\n{warnings}", started.elapsed());

    // 2. Contents and modes.
    let (listing, _) = run("dpkg-deb -c", Command::new(&dpkg_deb).arg("-c").arg(&deb));
    let listed = contents(&listing);
    let mut want: Vec<(String, &str)> = vec![
        ("./usr/bin/shadowtap".into(), "-rwxr-xr-x"),
        ("./etc/shadowtap/config.toml".into(), "-rw-r--r--"),
        ("./etc/default/shadowtap".into(), "-rw-r--r--"),
        ("./usr/lib/systemd/system/shadowtap.service".into(), "-rw-r--r--"),
        ("./usr/lib/sysusers.d/shadowtap.conf".into(), "-rw-r--r--"),
        ("./usr/share/shadowtap/risk.toml".into(), "-rw-r--r--"),
        ("./usr/share/shadowtap/prometheus/alerts.yml".into(), "-rw-r--r--"),
        ("./usr/share/shadowtap/prometheus/recording.yml".into(), "-rw-r--r--"),
        ("./usr/share/shadowtap/dashboards/provisioning/dashboards.yml".into(), "-rw-r--r--"),
        ("./usr/share/shadowtap/dashboards/provisioning/datasource.yml".into(), "-rw-r--r--"),
        ("./usr/share/doc/shadowtap/README.md".into(), "-rw-r--r--"),
        ("./usr/share/doc/shadowtap/copyright".into(), "-rw-r--r--"),
    ];
    for f in files(&root().join("rules").join("services"), ".toml") {
        want.push((format!("./usr/share/shadowtap/services/{f}"), "-rw-r--r--"));
    }
    for f in files(&root().join("dashboards"), ".json") {
        want.push((format!("./usr/share/shadowtap/dashboards/{f}"), "-rw-r--r--"));
    }
    for f in files(&root().join("docs"), ".md") {
        want.push((format!("./usr/share/doc/shadowtap/{f}"), "-rw-r--r--"));
    }
    for doc in ["runbook.md", "configuration.md", "deployment.md"] {
        assert!(want.iter().any(|(p, _)| p.ends_with(doc)), "docs/{doc} exists and is packaged");
    }
    let mut problems = Vec::new();
    for (path, mode) in &want {
        match listed.get(path) {
            Some(m) if m == mode => {}
            Some(m) => problems.push(format!("{path}: mode {m}, expected {mode}")),
            None => problems.push(format!("{path}: not in the package")),
        }
    }
    assert!(problems.is_empty(), "{}\ndpkg-deb -c:\n{listing}", problems.join("\n"));

    // 3. Control fields, conffiles, maintainer scripts.
    let (info, _) = run("dpkg-deb -I", Command::new(&dpkg_deb).arg("-I").arg(&deb));
    assert_eq!(field(&info, "Package"), "shadowtap");
    assert_eq!(field(&info, "Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field(&info, "Section"), "net");
    let depends = field(&info, "Depends");
    assert!(
        depends.contains("libpcap0.8"),
        "Depends names libpcap ($auto needs dpkg-shlibdeps, Debian package dpkg-dev): {depends}"
    );
    assert!(depends.contains("systemd | systemd-standalone-sysusers"), "Depends names a sysusers provider: {depends}");
    let control = tmp.0.join("control");
    run("dpkg-deb -e", Command::new(&dpkg_deb).arg("-e").arg(&deb).arg(&control));
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap_or_else(|e| panic!("control file {name}: {e}"));
    let conffiles: Vec<String> = read("conffiles").lines().map(str::to_string).collect();
    assert_eq!(conffiles, ["/etc/shadowtap/config.toml", "/etc/default/shadowtap"], "conffiles");
    let postinst = read("postinst");
    assert!(postinst.contains("systemd-sysusers") && postinst.contains("shadowtap.conf"), "postinst creates the user:\n{postinst}");
    assert!(
        !postinst.contains("new installations run enable") && !postinst.contains("deb-systemd-invoke start"),
        "the unit is neither enabled nor started at install (its interface and departments are placeholders):\n{postinst}"
    );

    // 4. The unpacked files.
    let unpacked = tmp.0.join("root");
    run("dpkg-deb -x", Command::new(&dpkg_deb).arg("-x").arg(&deb).arg(&unpacked));
    let bin = unpacked.join("usr/bin/shadowtap");

    // 4a. The packaged configuration with the packaged catalog.
    let config = std::fs::read_to_string(unpacked.join("etc/shadowtap/config.toml")).unwrap();
    let catalog_line = "catalog = \"/usr/share/shadowtap/services\"";
    assert!(config.lines().any(|l| l == catalog_line), "the packaged config names the installed catalog:\n{config}");
    let local_config = tmp.0.join("config.toml");
    let local_catalog = unpacked.join("usr/share/shadowtap/services");
    let risk_line = "risk = \"/usr/share/shadowtap/risk.toml\"";
    assert!(config.lines().any(|l| l.starts_with(risk_line)), "the packaged config names the installed risk weights:\n{config}");
    let local_risk = unpacked.join("usr/share/shadowtap/risk.toml");
    let config = config
        .replace(catalog_line, &format!("catalog = {:?}", local_catalog.display().to_string()))
        .replace(risk_line, &format!("risk = {:?}", local_risk.display().to_string()));
    std::fs::write(&local_config, config).unwrap();
    let (out, _) = run("shadowtap check (packaged config)", Command::new(&bin).arg("check").arg("--config").arg(&local_config));
    assert!(out.lines().any(|l| l == "ok"), "shadowtap check: {out}");
    let default = std::fs::read_to_string(unpacked.join("etc/default/shadowtap")).unwrap();
    assert!(default.lines().any(|l| l.starts_with("SHADOWTAP_INTERFACE=")), "/etc/default/shadowtap sets the interface:\n{default}");

    // 4b. The unit: systemd-analyze verify (ExecStart pointed at the unpacked binary, which
    //     must exist) without a warning about it, and the hardening it promises.
    let unit = std::fs::read_to_string(unpacked.join("usr/lib/systemd/system/shadowtap.service")).unwrap();
    let directives: Vec<&str> = unit.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let exec_start = directives.iter().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart=");
    for arg in ["/usr/bin/shadowtap run", "--config /etc/shadowtap/config.toml", "--state-dir /var/lib/shadowtap", "-i ${SHADOWTAP_INTERFACE}"] {
        assert!(exec_start.contains(arg), "ExecStart has `{arg}`: {exec_start}");
    }
    for d in [
        "EnvironmentFile=-/etc/default/shadowtap",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "User=shadowtap",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
        "NoNewPrivileges=yes",
        "StateDirectory=shadowtap",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "LimitNOFILE=65536",
        "RestrictAddressFamilies=AF_PACKET AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "WantedBy=multi-user.target",
    ] {
        assert!(directives.contains(&d), "the unit has `{d}`:\n{unit}");
    }
    for d in ["PrivateNetwork=yes", "PrivateUsers=yes", "DynamicUser=yes"] {
        assert!(!directives.contains(&d), "the unit must not have `{d}` (capture needs the host's interfaces and a fixed user)");
    }
    let units = tmp.0.join("units");
    std::fs::create_dir_all(&units).unwrap();
    let unit_file = units.join("shadowtap.service");
    std::fs::write(&unit_file, unit.replace("/usr/bin/shadowtap", &bin.display().to_string())).unwrap();
    let analyze = tool("systemd-analyze", "systemd");
    let (stdout, stderr) = run("systemd-analyze verify", Command::new(&analyze).args(["verify", "--man=no"]).arg(&unit_file));
    let complaints: Vec<&str> = stdout.lines().chain(stderr.lines()).filter(|l| l.contains("shadowtap")).collect();
    assert!(complaints.is_empty(), "systemd-analyze verify warns about the unit:\n{}", complaints.join("\n"));

    // 4c. The sysusers.d file creates a `shadowtap` system user whose home is the state directory.
    let sysroot = tmp.0.join("sysroot");
    std::fs::create_dir_all(sysroot.join("etc")).unwrap();
    run(
        "systemd-sysusers",
        Command::new(tool("systemd-sysusers", "systemd"))
            .arg(format!("--root={}", sysroot.display()))
            .arg(unpacked.join("usr/lib/sysusers.d/shadowtap.conf")),
    );
    let passwd = std::fs::read_to_string(sysroot.join("etc/passwd")).unwrap_or_default();
    let user = passwd.lines().find(|l| l.starts_with("shadowtap:")).unwrap_or_else(|| panic!("no shadowtap user:\n{passwd}"));
    assert_eq!(user.split(':').nth(5), Some("/var/lib/shadowtap"), "home of {user}");

    eprintln!("package checked in {:.1?}", started.elapsed());
}

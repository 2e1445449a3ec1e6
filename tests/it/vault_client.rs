//! The Vault HTTP client against a real OpenBao server (`bao`, raft storage), started and
//! stopped by its own PID.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vaultform::vault::{Client, Secret, TlsSettings};

struct Bao {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This file's loopback address, with fixed ports: nothing else in the suite uses 127.0.83.x.
const ADDR: &str = "127.0.83.1";

fn start_bao() -> Bao {
    let dir = tempfile::tempdir().unwrap();
    let (api, cluster) = (8200, 8201);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = format!(
        "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n  performance_multiplier = 1\n}}\n\
         listener \"tcp\" {{\n  address = \"{ADDR}:{api}\"\n  cluster_address = \"{ADDR}:{cluster}\"\n  tls_disable = true\n}}\n\
         api_addr = \"http://{ADDR}:{api}\"\ncluster_addr = \"http://{ADDR}:{cluster}\"\ndisable_mlock = true\n",
        data.display()
    );
    std::fs::write(dir.path().join("bao.hcl"), config).unwrap();
    let log = std::fs::File::create(dir.path().join("bao.log")).unwrap();
    let child = Command::new(crate::support::testbed::bin_dir().join("bao"))
        .args([
            "server",
            &format!("-config={}", dir.path().join("bao.hcl").display()),
        ])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start bao");
    let bao = Bao {
        child,
        addr: format!("http://{ADDR}:{api}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delay = Duration::from_millis(20);
    while std::net::TcpStream::connect((ADDR, api)).is_err() {
        assert!(Instant::now() < deadline, "bao did not start");
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
    bao
}

#[tokio::test]
async fn init_unseal_raft_kv_and_snapshot_against_a_real_openbao() {
    let bao = start_bao();
    let c = Client::new(&bao.addr, &TlsSettings::default()).unwrap();
    let h = c.health().await.unwrap();
    assert_eq!(h.status, 501, "not initialised yet");
    assert!(!c.initialized().await.unwrap());

    let init = c.init(3, 2).await.unwrap();
    assert_eq!(init.keys_base64.len(), 3);
    assert_eq!(
        format!("{:?}", init.root_token),
        "Secret(sensitive)",
        "secrets never print"
    );
    let s = c.seal_status().await.unwrap();
    assert!(s.sealed);
    assert_eq!((s.t, s.n), (2, 3));
    let s = c.unseal(&init.keys_base64[0]).await.unwrap();
    assert!(s.sealed && s.progress == 1);
    let s = c.unseal(&init.keys_base64[2]).await.unwrap();
    assert!(!s.sealed);

    // The raft leader election after unseal: poll health with backoff until active.
    let token = init.root_token.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delay = Duration::from_millis(25);
    loop {
        let h = c.health().await.unwrap();
        if h.active() {
            break;
        }
        assert!(Instant::now() < deadline, "never became active: {h:?}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
    assert!(c.leader().await.unwrap().is_self);
    let servers = c.raft_configuration(&token).await.unwrap();
    assert_eq!(servers.len(), 1);
    assert!(servers[0].leader && servers[0].voter);
    assert_eq!(servers[0].node_id, "n1");

    c.enable_secrets_engine(
        &token,
        "kv",
        "kv",
        serde_json::json!({"version": "2"}),
        serde_json::json!({}),
    )
    .await
    .unwrap();
    assert!(c.mounts(&token).await.unwrap().get("kv/").is_some());
    c.write(
        &token,
        "kv/data/app",
        serde_json::json!({"data": {"webapp": "ABB39KKPTWOR832JGNLS02"}}),
    )
    .await
    .unwrap();
    let read = c.read(&token, "kv/data/app").await.unwrap();
    assert_eq!(
        read.pointer("/data/data/webapp").and_then(|v| v.as_str()),
        Some("ABB39KKPTWOR832JGNLS02")
    );
    c.put_policy(
        &token,
        "app",
        "path \"kv/data/app\" { capabilities = [\"read\"] }",
    )
    .await
    .unwrap();
    c.enable_auth(&token, "approle", "approle").await.unwrap();

    let snapshot = c.snapshot_save(&token).await.unwrap();
    assert!(snapshot.len() > 100, "a raft snapshot");

    let bad = Secret::new("not-a-token".into());
    let err = c.raft_configuration(&bad).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(!err.to_string().contains("not-a-token"), "{err}");
}

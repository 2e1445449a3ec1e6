//! The local runtime behind the runtime contract: a member is a server process, a region's
//! load balancers are HAProxies, both started again through the providers apply uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::process::{self, ProcessRecord};
use super::{
    LocalProxy, VaultMember, check_restartable, io, member_attrs, member_process, program_path,
    proxy_attrs, proxy_process, read_pidfile, start_member,
};
use crate::address::{Address, VaultItem};
use crate::graph::Kind;
use crate::provider::{Cx, Desired, OpError, Provider};
use crate::runtime::Runtime;
use crate::vault::spec::{MemberSpec, VaultSpec, Vaults};

/// The local runtime: processes on this machine.
pub struct LocalRuntime {
    member: VaultMember,
    proxy: LocalProxy,
}

impl LocalRuntime {
    pub fn new(vaults: Arc<Vaults>) -> Self {
        LocalRuntime {
            member: VaultMember(vaults.clone()),
            proxy: LocalProxy(vaults),
        }
    }

    /// The provider of the load balancers' HAProxies.
    pub fn proxy(&self) -> &LocalProxy {
        &self.proxy
    }

    /// The load balancers of `v` in `region`: an HAProxy each.
    fn load_balancers(v: &VaultSpec, region: &str) -> Vec<String> {
        v.proxy_regions
            .iter()
            .filter(|(_, r)| r.as_str() == region)
            .map(|(lb, _)| lb.clone())
            .collect()
    }

    async fn start_proxy(&self, cx: &Cx<'_>, v: &VaultSpec, lb: &str) -> Result<(), OpError> {
        let p = v
            .proxies
            .get(lb)
            .ok_or_else(|| OpError::fatal(format!("{lb}: no such load balancer")))?;
        let d = Desired {
            address: Address::vault(&v.name, VaultItem::Proxy(lb.to_string())),
            kind: Kind::LocalProxy,
            region: None,
            name: lb.to_string(),
            attrs: proxy_attrs(p),
            deps: Vec::new(),
            resumed: false,
        };
        self.proxy.create(cx, &d).await.map(drop)
    }
}

fn running(v: &VaultSpec, m: &MemberSpec) -> Result<ProcessRecord, OpError> {
    member_process(v, &m.name).ok_or_else(|| {
        OpError::fatal(format!(
            "no running process recorded for {}: apply the topology first",
            m.name
        ))
    })
}

#[async_trait::async_trait]
impl Runtime for LocalRuntime {
    fn member(&self) -> &dyn Provider {
        &self.member
    }

    fn member_desired(
        &self,
        v: &VaultSpec,
        m: &MemberSpec,
    ) -> Option<(String, Map<String, Value>)> {
        Some((m.name.clone(), member_attrs(v, m)))
    }

    async fn wipe(&self, cx: &Cx<'_>, v: &VaultSpec, m: &MemberSpec) -> Result<(), OpError> {
        let dir = v.member_dir(&m.name);
        if let Some(rec) = read_pidfile(&dir) {
            process::stop(&rec, Duration::from_secs(15))
                .await
                .map_err(|e| OpError::fatal(e.to_string()))?;
        }
        let data = dir.join("data");
        match std::fs::remove_dir_all(&data) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &data, e)),
        }
        let seal = v.seal_stanza(cx.aws, cx.outputs, m).await?;
        start_member(v, m, &v.binary, seal.as_deref())
            .await
            .map(drop)
    }

    async fn check_member(
        &self,
        _cx: &Cx<'_>,
        v: &VaultSpec,
        m: &MemberSpec,
    ) -> Result<(), OpError> {
        check_restartable(v, &m.name)?;
        running(v, m).map(drop)
    }

    async fn stop_member(
        &self,
        _cx: &Cx<'_>,
        v: &VaultSpec,
        m: &MemberSpec,
        grace: Option<Duration>,
    ) -> Result<String, OpError> {
        let rec = running(v, m)?;
        match grace {
            None => {
                process::kill(&rec);
                Ok(format!("SIGKILL of PID {}", rec.pid))
            }
            Some(grace) => {
                process::stop(&rec, grace)
                    .await
                    .map_err(|e| OpError::fatal(e.to_string()))?;
                Ok(format!("SIGTERM of PID {}", rec.pid))
            }
        }
    }

    /// Starts the server again with the configuration apply gave it, through the member's
    /// provider.
    async fn start_member(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        m: &MemberSpec,
    ) -> Result<(), OpError> {
        let d = Desired {
            address: Address::vault(&v.name, VaultItem::Member(m.name.clone())),
            kind: Kind::VaultMember,
            region: None,
            name: m.name.clone(),
            attrs: member_attrs(v, m),
            deps: Vec::new(),
            resumed: false,
        };
        self.member.create(cx, &d).await.map(drop)
    }

    async fn check_region(
        &self,
        _cx: &Cx<'_>,
        v: &VaultSpec,
        region: &str,
        lost: &[MemberSpec],
    ) -> Result<(), OpError> {
        let lbs = Self::load_balancers(v, region);
        if v.front.as_ref().is_some_and(|f| lbs.contains(f)) {
            return Err(OpError::fatal(format!(
                "the front endpoint is in {region}: losing it leaves clients nothing to reach; drill another region"
            )));
        }
        for m in lost {
            check_restartable(v, &m.name)?;
        }
        for lb in &lbs {
            program_path(&v.proxy_dir(lb), "haproxy")?;
        }
        Ok(())
    }

    /// SIGKILL of the region's members and of its load balancers' HAProxies, all at once.
    async fn lose_region(
        &self,
        _cx: &Cx<'_>,
        v: &VaultSpec,
        region: &str,
        lost: &[MemberSpec],
    ) -> Result<Vec<String>, OpError> {
        let lbs = Self::load_balancers(v, region);
        let records: Vec<ProcessRecord> = lost
            .iter()
            .filter_map(|m| member_process(v, &m.name))
            .chain(lbs.iter().filter_map(|lb| proxy_process(v, lb)))
            .collect();
        records.iter().for_each(process::kill);
        Ok(lbs)
    }

    async fn restore_region(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        region: &str,
        lost: &[MemberSpec],
    ) -> Result<(), OpError> {
        for lb in Self::load_balancers(v, region) {
            self.start_proxy(cx, v, &lb).await?;
        }
        let started =
            futures::future::join_all(lost.iter().map(|m| self.start_member(cx, v, m))).await;
        started.into_iter().collect()
    }

    fn process_dir(&self, v: &VaultSpec) -> Option<PathBuf> {
        Some(v.work_dir.clone())
    }
}

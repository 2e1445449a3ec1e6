//! `seal "awskms"` against moto: the key the seal names is made a multi-Region key in the
//! bootstrap member's region and replicated into each other member's region; each member's
//! stanza names its own region's replica, which exists there; a second plan changes nothing;
//! destroy schedules the replicas' deletion and the primary's. (Only the key is applied: the
//! Kubernetes runtime that would run the members is not built.)

use crate::support::aws::Api;
use crate::support::stack::LocalStack;
use aws_sdk_kms::types::KeyState;
use vaultform::vault::seal::{awskms_stanza, replica_arn};

const FILE: &str = "awskms.kdl";
const KEY: &str = "region.eu-west-1.key.unseal";

#[test]
fn the_awskms_key_is_replicated_into_every_members_region() {
    let stack = LocalStack::new(FILE, ".vaultform/ak");
    stack.ok(&["apply", FILE, "--target", KEY, "--auto-approve"]);
    let state = stack.state(".vaultform/awskms.state.json");
    let arn = state["resources"][KEY]["outputs"]["arn"]
        .as_str()
        .expect("the key's ARN")
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let api = Api::new(&stack.moto.endpoint()).await;
        let primary = api
            .kms("eu-west-1")
            .describe_key()
            .key_id(&arn)
            .send()
            .await
            .unwrap();
        let meta = primary.key_metadata().unwrap();
        assert_eq!(meta.multi_region(), Some(true));
        for region in ["us-east-1", "eu-north-1"] {
            let replica = replica_arn(&arn, region);
            let got = api
                .kms(region)
                .describe_key()
                .key_id(&replica)
                .send()
                .await
                .unwrap_or_else(|e| panic!("no replica in {region}: {e:?}"));
            assert_eq!(got.key_metadata().unwrap().arn(), Some(replica.as_str()));
            let stanza = awskms_stanza(region, &arn);
            assert!(
                stanza.contains(&format!("region = \"{region}\"")),
                "{stanza}"
            );
            assert!(
                stanza.contains(&format!("kms_key_id = \"{replica}\"")),
                "{stanza}"
            );
        }
    });

    let plan = stack.ok(&["plan", FILE, "--target", KEY, "--detailed-exitcode"]);
    assert!(!plan.contains(KEY), "{plan}");

    stack.ok(&["destroy", FILE, "--target", KEY, "--auto-approve"]);
    rt.block_on(async {
        let api = Api::new(&stack.moto.endpoint()).await;
        for region in ["eu-west-1", "us-east-1", "eu-north-1"] {
            let got = api
                .kms(region)
                .describe_key()
                .key_id(replica_arn(&arn, region))
                .send()
                .await
                .unwrap();
            assert_eq!(
                got.key_metadata().unwrap().key_state(),
                Some(&KeyState::PendingDeletion),
                "{region}"
            );
        }
    });
}

//! The account commands on a real coordinator: an operator creates a customer, the customer
//! makes and revokes keys, the operator suspends them; a device owner's commands; and a secret
//! given without a coordinator never reaches a throw-away grid.

use crate::harness::*;
use idlegrid_api::accounts::{CreatedSecret, OwnerDevices};
use idlegrid_api::admin::CreatedCustomer;

fn cli(home: &Path, args: &[&str]) -> std::process::Output {
    crate::common::idlegrid(home)
        .args(args)
        .output()
        .expect("idlegrid runs")
}

fn text(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn operators_customers_and_owners_manage_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (_coordinator, ready) = start_coordinator_with(dir.path(), "127.0.0.1:0", 30, &[]);
    let at = |secret: &str| {
        [
            "--coordinator".to_string(),
            ready.url.clone(),
            "--key".into(),
            secret.into(),
        ]
    };
    let run = |args: &[&str], secret: &str| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(at(secret));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        cli(&home, &refs)
    };

    let made = run(
        &["admin", "customers", "create", "Acme Films", "--json"],
        &ready.operator_key,
    );
    assert!(made.status.success(), "{}", text(&made));
    let customer: CreatedCustomer = serde_json::from_slice(&made.stdout).unwrap();

    let key = run(&["keys", "create", "ci", "--json"], &customer.api_key);
    assert!(key.status.success(), "{}", text(&key));
    let key: CreatedSecret = serde_json::from_slice(&key.stdout).unwrap();
    let listed = run(&["keys"], &customer.api_key);
    let listed_text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed_text.contains("ci") && listed_text.contains(&key.info.prefix),
        "{}",
        text(&listed)
    );
    assert!(!listed_text.contains(&key.secret), "a secret is shown once");
    let id = key.info.id.to_string();
    let revoked = run(&["keys", "revoke", &id], &customer.api_key);
    assert!(revoked.status.success(), "{}", text(&revoked));
    let refused = cli(
        &home,
        &[
            "balance",
            "--coordinator",
            &ready.url,
            "--api-key",
            &key.secret,
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("invalid_credentials"),
        "{}",
        text(&refused)
    );

    let cid = customer.customer.id.0.to_string();
    let deposit = run(
        &["deposit", &cid, "5", "--reference", "wire-1", "--json"],
        &ready.operator_key,
    );
    assert!(deposit.status.success(), "{}", text(&deposit));
    let suspended = run(
        &["admin", "customers", "suspend", &cid],
        &ready.operator_key,
    );
    assert!(suspended.status.success(), "{}", text(&suspended));
    let refused = cli(
        &home,
        &[
            "jobs",
            "--coordinator",
            &ready.url,
            "--api-key",
            &customer.api_key,
        ],
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("account_suspended"),
        "{}",
        text(&refused)
    );
    // A customer key is no operator key.
    let refused = run(&["admin", "customers", "list"], &ready.api_key);
    assert!(!refused.status.success(), "{}", text(&refused));

    let devices = run(&["devices", "--json"], &ready.enrollment_token);
    assert!(devices.status.success(), "{}", text(&devices));
    let devices: OwnerDevices = serde_json::from_slice(&devices.stdout).unwrap();
    assert!(devices.devices.is_empty());
    let payout = run(&["payout", "1"], &ready.enrollment_token);
    assert!(!payout.status.success());
    assert!(
        String::from_utf8_lossy(&payout.stderr).contains("payout_exceeds_balance"),
        "{}",
        text(&payout)
    );

    // A secret without a coordinator, and no local grid running: an error, not a throw-away
    // grid where any key would seem to work.
    for args in [
        vec!["balance", "--api-key", "igk_wrong"],
        vec!["jobs", "--api-key", "igk_wrong"],
        vec!["keys", "--key", "igk_wrong"],
    ] {
        let refused = cli(&home, &args);
        assert!(!refused.status.success(), "{}", text(&refused));
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("no coordinator"),
            "{}",
            text(&refused)
        );
    }
    let script = script_path("transform.py");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\n").unwrap();
    let refused = cli(
        &home,
        &[
            "run",
            script.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            dir.path().join("out.txt").to_str().unwrap(),
            "--api-key",
            "igk_wrong",
        ],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(!dir.path().join("out.txt").exists());
}

//! An independent PKCS#11 client (OpenSC's pkcs11-tool) looks at our keys.

use std::process::Command;

use crate::token::{self, LABEL, PIN};

fn pkcs11_tool(args: &[&str]) -> std::process::Output {
    let token = token::token();
    Command::new("pkcs11-tool")
        .env(
            "SOFTHSM2_CONF",
            hsm_adapter::softhsm::config_path(&token.dir),
        )
        .arg("--module")
        .arg(token::module_path())
        .args(["--token-label", LABEL, "--login", "--pin", PIN])
        .args(args)
        .output()
        .expect("pkcs11-tool (package opensc) must be installed")
}

#[test]
fn pkcs11_tool_sees_sensitive_non_extractable_keys_and_cannot_read_them() {
    token::token();
    let listing = pkcs11_tool(&["--list-objects", "--type", "secrkey"]);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{text}");
    for label in ["gatehouse-wrap-v1", "gatehouse-bind-v1"] {
        let entry = text
            .split("Secret Key Object")
            .find(|entry| entry.contains(&format!("label:      {label}\n")))
            .unwrap_or_else(|| panic!("{label} not listed in:\n{text}"));
        let access = entry
            .lines()
            .find(|line| line.trim_start().starts_with("Access:"))
            .unwrap_or_else(|| panic!("no access line for {label}:\n{entry}"));
        let flags: Vec<&str> = access
            .trim_start()
            .trim_start_matches("Access:")
            .split(',')
            .map(str::trim)
            .collect();
        assert!(flags.contains(&"sensitive"), "{access}");
        assert!(flags.contains(&"never extractable"), "{access}");
        assert!(!flags.contains(&"extractable"), "{access}");
    }
    for label in ["gatehouse-wrap-v1", "gatehouse-bind-v1"] {
        let read = pkcs11_tool(&["--read-object", "--type", "secrkey", "--label", label]);
        assert!(!read.status.success(), "{label}'s value was read");
        assert!(read.stdout.is_empty(), "{label}'s value was printed");
    }
}

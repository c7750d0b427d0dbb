//! opencryptoki's software token, shared by this test binary (one module
//! context per process). The token is global to the machine and kept between
//! runs: tests must not assume which key version is active.

use std::sync::OnceLock;

use gatehouse_tests::opencryptoki::OpenCryptoki;
use hsm_adapter::{ModuleConfig, SecretString, TokenAdmin, Vault, VaultConfig};

pub use crate::common::{enroll, reference_code};

pub const LABEL: &str = OpenCryptoki::LABEL;

pub struct TestToken {
    pub vault: Vault,
}

pub fn token() -> &'static TestToken {
    static TOKEN: OnceLock<TestToken> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let harness = OpenCryptoki::start_for_process();
        let config = ModuleConfig {
            module_path: Some(harness.module().to_owned()),
            softhsm_config: None,
        };
        let pin = SecretString::from(OpenCryptoki::USER_PIN.to_owned());
        // A fresh active version of the scheme negotiated here.
        TokenAdmin::open(&config, LABEL, &pin, None)
            .expect("admin")
            .add_key_version()
            .expect("key version");
        let vault = Vault::open(VaultConfig::new(config, LABEL, pin)).expect("vault");
        TestToken { vault }
    })
}

pub fn vault() -> &'static Vault {
    &token().vault
}

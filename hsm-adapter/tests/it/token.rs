//! A real SoftHSM token in a temporary directory, shared by this test binary.
//!
//! SoftHSM reads its configuration once per process, so every test here uses
//! the same token and the same vault. Tests must not assume which key
//! version is active: some add versions.

use std::path::PathBuf;
use std::sync::OnceLock;

use hsm_adapter::{ModuleConfig, SecretString, TokenAdmin, Vault, VaultConfig};

pub use crate::common::{enroll, reference_code};

pub const LABEL: &str = "gatehouse-test";
pub const PIN: &str = "test-user-pin-1234";
pub const SO_PIN: &str = "test-so-pin-5678";

pub struct TestToken {
    pub dir: PathBuf,
    pub config: ModuleConfig,
    pub vault: Vault,
}

pub fn token() -> &'static TestToken {
    static TOKEN: OnceLock<TestToken> = OnceLock::new();
    TOKEN.get_or_init(|| {
        // Kept for the life of the test process; removed by the OS's tmp
        // cleaning, or by the harness.
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-vault-it-")
            .tempdir()
            .expect("temp dir")
            .keep();
        hsm_adapter::softhsm::prepare_dir(&dir).expect("softhsm dir");
        let config = ModuleConfig::softhsm_dir(&dir);
        hsm_adapter::init_token(&config, LABEL, &secret(SO_PIN), &secret(PIN)).expect("init token");
        {
            let admin = TokenAdmin::open(&config, LABEL, &secret(PIN), None).expect("admin");
            admin.add_key_version().expect("key version 1");
        }
        let vault =
            Vault::open(VaultConfig::new(config.clone(), LABEL, secret(PIN))).expect("vault");
        TestToken { dir, config, vault }
    })
}

pub fn vault() -> &'static Vault {
    &token().vault
}

pub fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

pub fn module_path() -> PathBuf {
    token().config.resolve_module_path().expect("module path")
}

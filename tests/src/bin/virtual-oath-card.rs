//! A virtual YubiKey OATH card for pcscd's vpcd reader, as a program:
//! `virtual-oath-card [--no-touch]`. It stays in the reader until killed.

use gatehouse_tests::oath_card::{OathCard, Touch};
use gatehouse_tests::vpcd::InsertedCard;

fn main() {
    let touch = if std::env::args().any(|arg| arg == "--no-touch") {
        Touch::Never
    } else {
        Touch::Always
    };
    let _card = InsertedCard::insert(OathCard::new(touch));
    eprintln!("virtual OATH card inserted; stop with Ctrl-C");
    loop {
        std::thread::park();
    }
}

//! A virtual card plugged into pcscd through Debian's `vsmartcard-vpcd`
//! reader driver: the card connects to vpcd over TCP and answers its
//! messages (2-byte big-endian length, then the payload; a 1-byte payload is
//! a control message: 0 power off, 1 power on, 2 reset, 4 get ATR).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::oath_card::{ATR, OathCard};

/// vpcd's port for its first reader ("Virtual PCD 00 00").
pub const VPCD_PORT: u16 = 0x8C7B;

/// A card in the virtual reader, answering from a thread. Dropping it (or
/// `remove`) pulls the card out.
pub struct InsertedCard {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
    pub card: Arc<Mutex<OathCard>>,
}

impl InsertedCard {
    /// Connect `card` to vpcd (retrying until pcscd has loaded the driver).
    pub fn insert(card: OathCard) -> InsertedCard {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", VPCD_PORT)) {
                Ok(stream) => break stream,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "vpcd does not accept the card: {error}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let card = Arc::new(Mutex::new(card));
        let reader = stream.try_clone().expect("clone the card's socket");
        let shared = Arc::clone(&card);
        let thread = std::thread::spawn(move || serve(reader, &shared));
        InsertedCard {
            stream,
            thread: Some(thread),
            card,
        }
    }

    /// Pull the card out of the reader.
    pub fn remove(mut self) {
        self.disconnect();
    }

    fn disconnect(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InsertedCard {
    fn drop(&mut self) {
        self.disconnect();
    }
}

fn serve(mut stream: TcpStream, card: &Mutex<OathCard>) {
    loop {
        let mut length = [0u8; 2];
        if stream.read_exact(&mut length).is_err() {
            return;
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if stream.read_exact(&mut message).is_err() {
            return;
        }
        let answer = match message.as_slice() {
            [4] => Some(ATR.to_vec()),
            [_] => None,
            apdu => {
                let Ok(mut card) = card.lock() else { return };
                let answer = card.process(apdu);
                if card.pulled_out {
                    // Out of the reader mid-command: no answer, no card.
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Some(answer)
            }
        };
        if let Some(answer) = answer {
            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            if stream.write_all(&framed).is_err() {
                return;
            }
        }
    }
}

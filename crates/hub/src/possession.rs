//! Proof of possession, for a [`Session`]: before a negotiated upload is
//! listed on the strength of bytes the store already holds, the client
//! proves it has those bytes, not just their hash (see
//! [`ferry_protocol::possession`]).

use ferry_io::disk::prove_possession;
use ferry_protocol::possession::challenge_ranges;
use ferry_protocol::{ErrorCode, Request, Response};
use tokio::time::timeout;

use crate::error::HubError;
use crate::outcome::Refusal;
use crate::publish::Publication;
use crate::session::Session;

/// How a challenge ended.
pub(crate) enum Possession {
    /// The client holds the bytes: the entry may be made without them.
    Proven,
    /// The store does not hold these bytes (at this size): the client
    /// sends them, as for any upload.
    NotHeld,
    /// The proof was wrong; the client was told.
    Refused,
}

impl Session {
    /// Challenges the client for the bytes of `publication` if the store
    /// holds them already.
    pub(crate) async fn challenge_possession(
        &mut self,
        publication: &Publication,
    ) -> Result<Possession, HubError> {
        let hash = publication.hash;
        if !self.hub.catalog.hash_in_use(&hash).await?
            || self.hub.catalog.size_of_blob(&hash).await? != Some(publication.size)
        {
            return Ok(Possession::NotHeld);
        }
        let mut nonce = [0; 32];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| {
            let e = std::io::Error::other("no randomness");
            HubError::io(
                "drawing a possession challenge",
                std::path::Path::new("-"),
                e,
            )
        })?;
        let ranges = challenge_ranges(&nonce, publication.size);
        let blob = self.hub.store.blob_path(&hash);
        let asked = ranges.clone();
        let expected = tokio::task::spawn_blocking(move || {
            prove_possession(&std::fs::File::open(blob)?, &nonce, &asked)
        });
        let Ok(Ok(expected)) = expected.await else {
            return Ok(Possession::NotHeld); // the blob went meanwhile
        };
        self.writer.send(&Response::Prove { nonce, ranges }).await?;
        let stall = self.hub.config.stall_timeout;
        let answer = timeout(stall, self.reader.recv())
            .await
            .map_err(|_| ferry_io::body::BodyError::Stalled(stall))?;
        match answer? {
            Some(Request::Proof { proof }) if proof == expected => Ok(Possession::Proven),
            Some(Request::Proof { .. }) => {
                let message = format!(
                    "'{}': you do not hold the bytes with the hash you announced \
                     (the proof of possession failed); nothing was stored",
                    publication.name
                );
                self.refuse(Refusal::new(ErrorCode::HashMismatch, message))
                    .await?;
                Ok(Possession::Refused)
            }
            Some(_) => Err(HubError::Protocol("expected a proof of possession")),
            None => Err(HubError::Frame(ferry_protocol::FrameError::Truncated)),
        }
    }
}

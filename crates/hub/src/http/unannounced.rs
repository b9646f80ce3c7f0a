//! A `PUT` body of unknown length (chunked, as `tar c . | curl -T - URL`
//! sends it). It is held, as it arrives, to the least of the hub's largest
//! file, the caller's quota left and the room above the free-space
//! reserve; and it takes quota and checks room a step at a time as it
//! grows, so that uploads under way together can pass neither, as those
//! that announce their length cannot.

use std::sync::Arc;

use ferry_protocol::{ErrorCode, FileName};

use super::error::ApiError;
use crate::access::credentials::Caller;
use crate::outcome::Refusal;
use crate::publish::accounts::{Reservation, human};
use crate::space;
use crate::state::Hub;

/// Quota taken (and room checked) at a time.
const STEP: u64 = 64 << 20;

/// The limits on one body of unknown length, and what it holds so far.
pub(crate) struct Unannounced {
    hub: Arc<Hub>,
    caller: Caller,
    name: FileName,
    /// Past this many bytes, `over`.
    cap: u64,
    over: Refusal,
    held: Vec<Reservation>,
    reserved: u64,
}

impl std::fmt::Debug for Unannounced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Unannounced({}, {} of {} reserved)",
            self.name, self.reserved, self.cap
        )
    }
}

impl Unannounced {
    /// The limits for `caller`'s body to become `name`.
    pub(crate) fn new(hub: &Arc<Hub>, caller: &Caller, name: &FileName) -> Result<Self, ApiError> {
        let max = hub.config.max_file_size;
        let mut limit = (
            max,
            Refusal::new(
                ErrorCode::TooLarge,
                format!(
                    "'{name}' is larger than this hub accepts ({max} bytes); nothing was stored"
                ),
            ),
        );
        let accounts = &hub.publisher.accounts;
        if let Some(left) = accounts.left(&caller.handle, caller.quota)
            && left < limit.0
        {
            limit = (left, quota_refusal(caller, name, left));
        }
        let free = free_room(hub)?;
        if free < limit.0 {
            let no_room = space::NoRoom {
                needed: free.saturating_add(1),
                free,
            };
            let message = no_room.message(name.as_str());
            limit = (free, Refusal::new(ErrorCode::StorageFull, message));
        }
        Ok(Self {
            hub: Arc::clone(hub),
            caller: caller.clone(),
            name: name.clone(),
            cap: limit.0,
            over: limit.1,
            held: Vec::new(),
            reserved: 0,
        })
    }

    /// The most bytes the body may have.
    pub(crate) fn cap(&self) -> u64 {
        self.cap
    }

    /// Lets the body grow to `received` bytes, taking the quota and
    /// checking the room for the next step first when it needs more.
    pub(crate) fn admit(&mut self, received: u64) -> Result<(), ApiError> {
        if received > self.cap {
            return Err(self.over.clone().into());
        }
        while received > self.reserved {
            let step = STEP.min(self.cap - self.reserved);
            let accounts = &self.hub.publisher.accounts;
            let reserved = accounts.reserve(&self.caller.handle, step, self.caller.quota);
            let reserved = reserved.map_err(|_| {
                let left = accounts.left(&self.caller.handle, self.caller.quota);
                quota_refusal(&self.caller, &self.name, left.unwrap_or(0))
            })?;
            let free = free_room(&self.hub)?;
            if free < step {
                let no_room = space::NoRoom { needed: step, free };
                let message = no_room.message(self.name.as_str());
                return Err(Refusal::new(ErrorCode::StorageFull, message).into());
            }
            self.held.push(reserved);
            self.reserved += step;
        }
        Ok(())
    }

    /// The quota taken, to hold until the file is published.
    pub(crate) fn into_reservations(self) -> Vec<Reservation> {
        self.held
    }
}

fn quota_refusal(caller: &Caller, name: &FileName, left: u64) -> Refusal {
    let message = format!(
        "quota: {} has {} left, and '{name}' is larger; nothing was stored. \
         Delete files (ferry rm) or ask an admin for more",
        caller.handle,
        human(left)
    );
    Refusal::new(ErrorCode::QuotaExceeded, message)
}

/// Bytes free on the store's disk above the reserve.
fn free_room(hub: &Hub) -> Result<u64, ApiError> {
    let dir = &hub.config.data_dir;
    let free = space::free_beyond(dir, hub.config.min_free_space)
        .map_err(|e| crate::error::HubError::io("checking free space", dir, e))?;
    Ok(free)
}

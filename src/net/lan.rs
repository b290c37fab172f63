//! Finding the community's devices on the local network with no internet:
//! mDNS (iroh-mdns-address-lookup), under the service name `convene`.
//!
//! Every convene device running `serve` announces its device id and
//! addresses; every announcement heard is only a hint. Whether a device may
//! sync is decided by the certificates, at the gate and in the session, as
//! for any other connection.

use iroh::Endpoint;
use iroh_mdns_address_lookup::MdnsAddressLookup;

pub use iroh_mdns_address_lookup::DiscoveryEvent;

/// The mDNS service name convene devices announce themselves under.
pub const SERVICE_NAME: &str = "convene";

/// Announce this endpoint on the local network and resolve peers' device ids
/// to addresses through mDNS from now on. Fails where the network has no
/// multicast-capable interface.
pub fn announce(endpoint: &Endpoint) -> anyhow::Result<MdnsAddressLookup> {
    let mdns = MdnsAddressLookup::builder()
        .service_name(SERVICE_NAME)
        .build(endpoint.id())?;
    endpoint.address_lookup()?.add(mdns.clone());
    Ok(mdns)
}

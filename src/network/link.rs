//! The kernel side of a bridge network, over rtnetlink: the bridge and its addresses, a veth
//! pair per container with one end on the bridge and the other in the container's network
//! namespace as `eth0`, its addresses and default routes.
//!
//! Everything here acts on the network namespace of the calling thread, except
//! [`configure_inside`], which runs on a thread of its own that joins the container's.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use futures_util::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// A step that failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct LinkError {
    pub step: String,
    #[source]
    pub source: io::Error,
}

/// The name a container's end of its veth pair gets inside the container.
pub const CONTAINER_INTERFACE: &str = "eth0";

trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, LinkError>;
}

impl<T> Step<T> for Result<T, rtnetlink::Error> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, LinkError> {
        self.map_err(|e| LinkError {
            step: what(),
            source: to_io(e),
        })
    }
}

impl<T> Step<T> for io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, LinkError> {
        self.map_err(|source| LinkError {
            step: what(),
            source,
        })
    }
}

/// The errno of a netlink error, for messages and for telling "exists" from real failures.
fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn is_errno(e: &LinkError, errno: i32) -> bool {
    e.source.raw_os_error() == Some(errno)
}

/// A netlink connection in the calling thread's network namespace, driven by the current
/// tokio runtime.
pub fn connect() -> Result<Handle, LinkError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().step(|| "opening a netlink socket".into())?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The index of the link called `name`, if there is one.
pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>, LinkError> {
    let mut links = h.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        Err(e) => {
            let e = to_io(e);
            if e.raw_os_error() == Some(libc::ENODEV) {
                Ok(None)
            } else {
                Err(LinkError {
                    step: format!("looking up link {name}"),
                    source: e,
                })
            }
        }
    }
}

/// Makes the bridge `name` with `addresses` (prefix lengths included) unless it exists, and
/// brings it up. Returns its index. Idempotent, and safe against a concurrent start that
/// makes it at the same time.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    addresses: &[(IpAddr, u8)],
) -> Result<u32, LinkError> {
    if index_of(h, name).await?.is_none() {
        match h
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .step(|| format!("creating bridge {name}"))
        {
            Err(e) if !is_errno(&e, libc::EEXIST) => return Err(e),
            _ => {}
        }
    }
    let index = index_of(h, name).await?.ok_or_else(|| LinkError {
        step: format!("creating bridge {name}"),
        source: io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    for (address, prefix) in addresses {
        match add_address(h, index, *address, *prefix)
            .await
            .step(|| format!("adding {address}/{prefix} to {name}"))
        {
            Err(e) if !is_errno(&e, libc::EEXIST) => return Err(e),
            _ => {}
        }
    }
    set_up(h, index, name).await?;
    Ok(index)
}

/// Adds an address to a link. An IPv6 one skips duplicate address detection (as Docker's and
/// Podman's do): the address is cleat's to give, and DAD would keep it "tentative", unusable,
/// for the first second or two of the container's life.
async fn add_address(
    h: &Handle,
    index: u32,
    address: IpAddr,
    prefix: u8,
) -> Result<(), rtnetlink::Error> {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
    let mut request = h.address().add(index, address, prefix);
    if address.is_ipv6() {
        let message = request.message_mut();
        message.header.flags |= AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    request.execute().await
}

async fn set_up(h: &Handle, index: u32, name: &str) -> Result<(), LinkError> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .step(|| format!("bringing {name} up"))
}

/// Creates the veth pair `host`/`peer` with `peer` made directly in the network namespace
/// `netns` (a descriptor of /proc/PID/ns/net: moving a link between namespaces afterwards
/// costs as much again as making it), and plugs `host` into the bridge `bridge` (an index),
/// up. On failure, what was created is removed again.
pub async fn add_veth(
    h: &Handle,
    host: &str,
    peer: &str,
    netns: BorrowedFd<'_>,
    bridge: u32,
) -> Result<(), LinkError> {
    use rtnetlink::LinkMessageBuilder;
    use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
    let peer_message = LinkUnspec::new_with_name(peer)
        .setns_by_fd(netns.as_raw_fd())
        .build();
    let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host.to_owned())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
        .build();
    h.link()
        .add(message)
        .execute()
        .await
        .step(|| format!("creating the veth pair {host}/{peer}"))?;
    let result = async {
        let host_index = index_of(h, host).await?.ok_or_else(|| LinkError {
            step: format!("finding {host}"),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        h.link()
            .set(
                LinkUnspec::new_with_index(host_index)
                    .controller(bridge)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .step(|| format!("plugging {host} into the bridge"))
    }
    .await;
    if result.is_err() {
        let _ = delete(h, host).await;
    }
    result
}

/// Removes the link `name` (a veth takes its peer with it). `false` if there was none.
pub async fn delete(h: &Handle, name: &str) -> Result<bool, LinkError> {
    let Some(index) = index_of(h, name).await? else {
        return Ok(false);
    };
    match h
        .link()
        .del(index)
        .execute()
        .await
        .step(|| format!("removing {name}"))
    {
        Ok(()) => Ok(true),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What the container's end of the pair gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inside {
    /// The interface as it arrived (the veth peer's name).
    pub from: String,
    /// Addresses with their prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Default routes' gateways (one per family at most).
    pub gateways: Vec<IpAddr>,
}

/// Names the container's interface `eth0`, gives it its addresses, brings it and loopback up
/// and adds its default routes, inside the network namespace `netns`. Runs on a thread of its
/// own that joins the namespace (the caller's threads stay where they are).
pub fn configure_inside(netns: BorrowedFd<'_>, inside: &Inside) -> Result<(), LinkError> {
    let netns = netns
        .try_clone_to_owned()
        .step(|| "duplicating the namespace descriptor".into())?;
    let inside = inside.clone();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                rustix::thread::move_into_link_name_space(
                    netns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(io::Error::from)
                .step(|| "entering the container's network namespace".into())?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .step(|| "starting a runtime".into())?;
                runtime.block_on(configure(&inside))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(LinkError {
                    step: "configuring the container's interface".into(),
                    source: io::Error::other("the thread panicked"),
                })
            })
    })
}

async fn configure(inside: &Inside) -> Result<(), LinkError> {
    let h = connect()?;
    let index = index_of(&h, &inside.from).await?.ok_or_else(|| LinkError {
        step: format!("finding {} in the container", inside.from),
        source: io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    h.link()
        .set(
            LinkUnspec::new_with_index(index)
                .name(CONTAINER_INTERFACE.to_owned())
                .build(),
        )
        .execute()
        .await
        .step(|| format!("renaming {} to {CONTAINER_INTERFACE}", inside.from))?;
    for (address, prefix) in &inside.addresses {
        add_address(&h, index, *address, *prefix)
            .await
            .step(|| format!("adding {address}/{prefix} to {CONTAINER_INTERFACE}"))?;
    }
    set_up(&h, index, CONTAINER_INTERFACE).await?;
    if let Some(lo) = index_of(&h, "lo").await? {
        set_up(&h, lo, "lo").await?;
    }
    for gateway in &inside.gateways {
        let route = match gateway {
            IpAddr::V4(g) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .gateway(*g)
                .output_interface(index)
                .build(),
            IpAddr::V6(g) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .gateway(*g)
                .output_interface(index)
                .build(),
        };
        h.route()
            .add(route)
            .execute()
            .await
            .step(|| format!("adding the default route via {gateway}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{can_run, in_own_network_namespace, new_netns};
    use super::*;
    use std::io::{Read, Write};

    /// The whole path in two namespaces of the test's own (never the machine's): a bridge
    /// with the gateway's address in one, a container's eth0 in the other, and a TCP
    /// connection from the "container" to the bridge's address.
    fn bridge_veth_and_a_connection() {
        let container = new_netns();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let gateway: IpAddr = "10.123.0.1".parse().unwrap();
        runtime.block_on(async {
            let h = connect().unwrap();
            let bridge = ensure_bridge(&h, "cltest0", &[(gateway, 24)])
                .await
                .unwrap();
            // Twice: idempotent.
            assert_eq!(
                ensure_bridge(&h, "cltest0", &[(gateway, 24)])
                    .await
                    .unwrap(),
                bridge
            );
            add_veth(&h, "vhost0", "vpeer0", container.as_fd(), bridge)
                .await
                .unwrap();
            assert!(
                index_of(&h, "vpeer0").await.unwrap().is_none(),
                "moved away"
            );
        });
        configure_inside(
            container.as_fd(),
            &Inside {
                from: "vpeer0".into(),
                addresses: vec![("10.123.0.2".parse().unwrap(), 24)],
                gateways: vec![gateway],
            },
        )
        .unwrap();
        let listener = std::net::TcpListener::bind((gateway, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                container.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            let mut s = std::net::TcpStream::connect((gateway, port)).unwrap();
            s.write_all(b"hello").unwrap();
        });
        let (mut conn, from) = listener.accept().unwrap();
        let mut buf = String::new();
        conn.read_to_string(&mut buf).unwrap();
        client.join().unwrap();
        assert_eq!(buf, "hello");
        assert_eq!(from.ip().to_string(), "10.123.0.2");
        runtime.block_on(async {
            let h = connect().unwrap();
            assert!(delete(&h, "vhost0").await.unwrap());
            assert!(!delete(&h, "vhost0").await.unwrap());
        });
    }

    /// Needs root; runs in a child process whose network namespace is its own.
    #[test]
    fn in_private_namespaces() {
        if can_run(false) {
            in_own_network_namespace(bridge_veth_and_a_connection);
        }
    }
}

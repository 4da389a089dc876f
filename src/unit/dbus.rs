//! A small typed client for systemd's D-Bus API (`org.freedesktop.systemd1`): the calls cleat
//! makes, with jobs awaited through `JobRemoved` (subscribed before the call, so a fast job
//! cannot slip by) and unit state read in one `GetAll` per interface.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use zbus::Connection;
use zbus::proxy;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use super::props::{DbusValue, Prop};

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, Vec<(&str, Value<'_>)>)],
    ) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn set_unit_properties(
        &self,
        name: &str,
        runtime: bool,
        properties: &[(&str, Value<'_>)],
    ) -> zbus::Result<()>;
    fn attach_processes_to_unit(
        &self,
        name: &str,
        subcgroup: &str,
        pids: &[u32],
    ) -> zbus::Result<()>;
    fn subscribe(&self) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
    #[zbus(signal)]
    fn unit_removed(&self, unit: &str, path: ObjectPath<'_>) -> zbus::Result<()>;
}

#[proxy(
    interface = "org.freedesktop.DBus.Properties",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
trait Properties {
    fn get_all(&self, interface: &str) -> zbus::Result<HashMap<String, OwnedValue>>;
    #[zbus(signal)]
    fn properties_changed(
        &self,
        interface: &str,
        changed: HashMap<&str, Value<'_>>,
        invalidated: Vec<&str>,
    ) -> zbus::Result<()>;
}

const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "cannot reach systemd over D-Bus ({address}): {source}\n\
         hint: cleat needs a running systemd and its system bus; is this host booted with systemd?"
    )]
    Connect {
        address: String,
        #[source]
        source: zbus::Error,
    },
    #[error("no such unit {0}")]
    NoSuchUnit(String),
    /// `KillUnit` found no process to signal (it had just exited).
    #[error("{0} has no process to signal")]
    NoSuchProcess(String),
    #[error("systemd refused: {0}")]
    Call(String),
    #[error("D-Bus: {0}")]
    Protocol(#[from] zbus::Error),
}

impl BusError {
    fn from_call(e: zbus::Error, unit: &str) -> BusError {
        if let zbus::Error::MethodError(name, detail, _) = &e {
            match name.as_str() {
                "org.freedesktop.systemd1.NoSuchUnit" => {
                    return BusError::NoSuchUnit(unit.to_owned());
                }
                "org.freedesktop.systemd1.NoSuchProcess" => {
                    return BusError::NoSuchProcess(unit.to_owned());
                }
                _ => {}
            }
            return BusError::Call(detail.clone().unwrap_or_else(|| name.to_string()));
        }
        BusError::Protocol(e)
    }
}

/// What a job is meant to achieve (to judge its outcome if its signal were lost).
#[derive(Debug, Clone, Copy)]
enum Intent {
    Start,
    Stop,
}

/// What a finished job reports (`JobRemoved`'s `result`): `done`, `failed`, `canceled`,
/// `timeout`, `dependency` or `skipped`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult(pub String);

impl JobResult {
    pub fn is_done(&self) -> bool {
        self.0 == "done"
    }
}

/// A snapshot of a unit's state (the `Unit` and, for services, `Service` interfaces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// The service's `Result=` (`success`, `exit-code`, `signal`, `timeout`, ...).
    pub result: String,
    pub main_pid: u32,
    /// `CLD_EXITED` (1), `CLD_KILLED` (2) or `CLD_DUMPED` (3); 0 if the process never ran.
    pub exec_main_code: i32,
    pub exec_main_status: i32,
    pub n_restarts: u32,
    /// Microseconds since the epoch; 0 when never.
    pub active_enter_usec: u64,
    pub inactive_enter_usec: u64,
    pub exec_main_start_usec: u64,
    pub exec_main_exit_usec: u64,
    pub invocation_id: String,
}

impl UnitState {
    pub fn is_running(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "deactivating" | "reloading"
        )
    }
}

fn get<T: TryFrom<OwnedValue>>(map: &HashMap<String, OwnedValue>, key: &str) -> Option<T> {
    map.get(key)
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| T::try_from(v).ok())
}

fn to_value(v: &DbusValue) -> Value<'static> {
    match v {
        DbusValue::Str(s) => Value::from(s.clone()),
        DbusValue::Bool(b) => Value::from(*b),
        DbusValue::U32(n) => Value::from(*n),
        DbusValue::I32(n) => Value::from(*n),
        DbusValue::U64(n) => Value::from(*n),
        DbusValue::Strs(v) => Value::from(v.clone()),
        DbusValue::Exec(cmds) => Value::from(cmds.clone()),
        DbusValue::ByteArrays(arrays) => Value::from(arrays.clone()),
        DbusValue::ExitStatusSet(codes, signals) => Value::from((codes.clone(), signals.clone())),
        DbusValue::Pairs(pairs) => Value::from(pairs.clone()),
    }
}

/// Properties in the form the D-Bus calls take.
pub fn dbus_properties(props: &[Prop]) -> Vec<(&'static str, Value<'static>)> {
    props
        .iter()
        .map(|p| {
            let (name, value) = p.dbus();
            (name, to_value(&value))
        })
        .collect()
}

/// Descriptors of the caller's to give a transient unit as its standard streams; those not
/// given keep the unit's settings (the journal; no input).
#[derive(Debug, Default)]
pub struct UnitStdio<'a> {
    pub stdin: Option<std::os::fd::BorrowedFd<'a>>,
    pub stdout: Option<std::os::fd::BorrowedFd<'a>>,
    pub stderr: Option<std::os::fd::BorrowedFd<'a>>,
}

impl<'a> UnitStdio<'a> {
    fn properties(&self) -> Vec<(&'static str, Value<'a>)> {
        let fd = |fd: std::os::fd::BorrowedFd<'a>| Value::Fd(zbus::zvariant::Fd::from(fd));
        let mut out = Vec::new();
        if let Some(f) = self.stdin {
            out.push(("StandardInputFileDescriptor", fd(f)));
        }
        match self.stdout {
            Some(f) => out.push(("StandardOutputFileDescriptor", fd(f))),
            // With input from a descriptor, systemd's default output would be that same one.
            None if self.stdin.is_some() => out.push(("StandardOutput", Value::from("journal"))),
            None => {}
        }
        match self.stderr {
            Some(f) => out.push(("StandardErrorFileDescriptor", fd(f))),
            None if self.stdin.is_some() => out.push(("StandardError", Value::from("journal"))),
            None => {}
        }
        out
    }
}

/// A connection to systemd.
pub struct Systemd {
    conn: Connection,
    manager: ManagerProxy<'static>,
    subscribed: std::sync::atomic::AtomicBool,
}

impl Systemd {
    /// Connects to the system bus (`$DBUS_SYSTEM_BUS_ADDRESS` or the standard socket).
    pub async fn connect() -> Result<Systemd, BusError> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into());
        let connect = async {
            // A roomy queue: signals for other units must not push ours out while we wait.
            let conn = zbus::connection::Builder::system()?
                .max_queued(4096)
                .build()
                .await?;
            let manager = ManagerProxy::new(&conn).await?;
            Ok::<_, zbus::Error>(Systemd {
                conn,
                manager,
                subscribed: false.into(),
            })
        };
        match tokio::time::timeout(Duration::from_secs(25), connect).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => Err(BusError::Connect { address, source }),
            Err(_) => Err(BusError::Connect {
                address,
                source: zbus::Error::Failure("timed out".into()),
            }),
        }
    }

    /// Asks systemd to send us signals (once per connection; systemd refuses a second time).
    async fn subscribe(&self) -> Result<(), BusError> {
        use std::sync::atomic::Ordering;
        if self.subscribed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.manager
            .subscribe()
            .await
            .map_err(|e| BusError::from_call(e, "subscribe"))
    }

    /// Runs a job-creating call and waits for the job to finish. `JobRemoved` (filtered by
    /// the bus to this unit) says how it ended; should the signal ever be lost, the job's
    /// disappearance is noticed within seconds and the result read from the unit's state.
    async fn job<F>(&self, unit: &str, intent: Intent, call: F) -> Result<JobResult, BusError>
    where
        F: Future<Output = zbus::Result<OwnedObjectPath>>,
    {
        let mut removed = self
            .manager
            .receive_job_removed_with_args(&[(2, unit)])
            .await?;
        self.subscribe().await?;
        let job = call.await.map_err(|e| BusError::from_call(e, unit))?;
        loop {
            tokio::select! {
                signal = removed.next() => {
                    let Some(signal) = signal else { break };
                    let args = signal.args()?;
                    if args.job() == &*job {
                        return Ok(JobResult(args.result().to_string()));
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(3)) => {
                    if !self.job_exists(&job).await? {
                        return self.inferred_result(unit, intent).await;
                    }
                }
            }
        }
        Err(BusError::Call(
            "the connection to systemd closed while waiting for a job".into(),
        ))
    }

    async fn job_exists(&self, job: &OwnedObjectPath) -> Result<bool, BusError> {
        match self
            .properties(job)
            .await?
            .get_all("org.freedesktop.systemd1.Job")
            .await
        {
            Ok(_) => Ok(true),
            Err(zbus::Error::MethodError(..)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The result of a job whose `JobRemoved` was not seen, judged by where the unit is now.
    async fn inferred_result(&self, unit: &str, intent: Intent) -> Result<JobResult, BusError> {
        let state = self.state_if_loaded(unit).await?;
        let active = state.as_ref().is_some_and(|s| s.active_state == "active");
        let ok = match intent {
            Intent::Start => active,
            Intent::Stop => !state.as_ref().is_some_and(|s| s.is_running()),
        };
        Ok(JobResult(if ok { "done" } else { "failed" }.into()))
    }

    /// `StartTransientUnit` in `fail` mode (an existing unit of that name is an error), waiting
    /// for the start job.
    pub async fn start_transient(&self, unit: &str, props: &[Prop]) -> Result<JobResult, BusError> {
        self.start_transient_with(unit, props, &UnitStdio::default())
            .await
    }

    /// [`Self::start_transient`], with some of the caller's descriptors as the unit's standard
    /// input, output or error (`systemd-run --pipe`), passed over the bus.
    pub async fn start_transient_with(
        &self,
        unit: &str,
        props: &[Prop],
        stdio: &UnitStdio<'_>,
    ) -> Result<JobResult, BusError> {
        let mut props = dbus_properties(props);
        props.extend(stdio.properties());
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        self.job(
            unit,
            Intent::Start,
            self.manager
                .start_transient_unit(unit, "fail", &props, &aux),
        )
        .await
    }

    /// A transient timer `NAME.timer` that runs `argv` (as `NAME.service`) once, `delay`
    /// from now, and is gone afterwards, with its service. Returns without waiting; a timer of
    /// that name already waiting is left as it is (`Ok(false)`).
    pub async fn run_later(
        &self,
        name: &str,
        description: &str,
        delay: Duration,
        argv: &[String],
    ) -> Result<bool, BusError> {
        let timer = format!("{name}.timer");
        let usec = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        let props: Vec<(&str, Value<'_>)> = vec![
            ("Description", Value::from(description)),
            (
                "TimersMonotonic",
                Value::from(vec![("OnActiveSec".to_owned(), usec)]),
            ),
            ("RemainAfterElapse", Value::from(false)),
            ("AccuracyUSec", Value::from(100_000u64)),
        ];
        let exec = vec![(argv[0].clone(), argv.to_vec(), false)];
        let service = format!("{name}.service");
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = vec![(
            service.as_str(),
            vec![
                ("Description", Value::from(description)),
                ("ExecStart", Value::from(exec)),
                ("CollectMode", Value::from("inactive-or-failed")),
            ],
        )];
        match self
            .manager
            .start_transient_unit(&timer, "fail", &props, &aux)
            .await
        {
            Ok(_) => Ok(true),
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.systemd1.UnitExists" =>
            {
                Ok(false)
            }
            Err(e) => Err(BusError::from_call(e, &timer)),
        }
    }

    pub async fn start(&self, unit: &str) -> Result<JobResult, BusError> {
        self.job(
            unit,
            Intent::Start,
            self.manager.start_unit(unit, "replace"),
        )
        .await
    }

    pub async fn stop(&self, unit: &str) -> Result<JobResult, BusError> {
        self.job(unit, Intent::Stop, self.manager.stop_unit(unit, "replace"))
            .await
    }

    /// Starts a stop job and returns without waiting for it.
    pub async fn stop_no_wait(&self, unit: &str) -> Result<(), BusError> {
        self.manager
            .stop_unit(unit, "replace")
            .await
            .map_err(|e| BusError::from_call(e, unit))?;
        Ok(())
    }

    pub async fn restart(&self, unit: &str) -> Result<JobResult, BusError> {
        self.job(
            unit,
            Intent::Start,
            self.manager.restart_unit(unit, "replace"),
        )
        .await
    }

    /// `KillUnit`: `whom` is `main` or `all`.
    pub async fn kill(&self, unit: &str, whom: &str, signal: i32) -> Result<(), BusError> {
        self.manager
            .kill_unit(unit, whom, signal)
            .await
            .map_err(|e| BusError::from_call(e, unit))
    }

    /// `AttachProcessesToUnit`: moves processes (by PID in systemd's PID namespace) into the
    /// unit's own control group, so systemd accounts for them and stops them with the unit.
    pub async fn attach_processes(&self, unit: &str, pids: &[u32]) -> Result<(), BusError> {
        self.manager
            .attach_processes_to_unit(unit, "", pids)
            .await
            .map_err(|e| BusError::from_call(e, unit))
    }

    pub async fn reset_failed(&self, unit: &str) -> Result<(), BusError> {
        match self.manager.reset_failed_unit(unit).await {
            Ok(()) => Ok(()),
            Err(e) => match BusError::from_call(e, unit) {
                BusError::NoSuchUnit(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    pub async fn set_properties(
        &self,
        unit: &str,
        runtime: bool,
        props: &[Prop],
    ) -> Result<(), BusError> {
        let props = dbus_properties(props);
        self.manager
            .set_unit_properties(unit, runtime, &props)
            .await
            .map_err(|e| BusError::from_call(e, unit))
    }

    /// The current values of a service's `u64` properties (such as `MemoryMax`), by D-Bus
    /// name; missing names are left out.
    pub async fn service_u64s(
        &self,
        unit: &str,
        names: &[&str],
    ) -> Result<HashMap<String, u64>, BusError> {
        let Some(path) = self.loaded_path(unit).await? else {
            return Ok(HashMap::new());
        };
        let all = self.properties(&path).await?.get_all(SERVICE_IFACE).await?;
        Ok(names
            .iter()
            .filter_map(|n| get::<u64>(&all, n).map(|v| ((*n).to_owned(), v)))
            .collect())
    }

    pub async fn daemon_reload(&self) -> Result<(), BusError> {
        self.manager
            .reload()
            .await
            .map_err(|e| BusError::from_call(e, "daemon"))
    }

    /// The object path of a unit that is loaded now, or `None`.
    async fn loaded_path(&self, unit: &str) -> Result<Option<OwnedObjectPath>, BusError> {
        match self.manager.get_unit(unit).await {
            Ok(p) => Ok(Some(p)),
            Err(e) => match BusError::from_call(e, unit) {
                BusError::NoSuchUnit(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn properties(
        &self,
        path: &OwnedObjectPath,
    ) -> Result<PropertiesProxy<'static>, BusError> {
        Ok(PropertiesProxy::builder(&self.conn)
            .path(path.clone())?
            .build()
            .await?)
    }

    /// The state of a unit, loading it if needed (so a template instance that is not loaded
    /// still reports `inactive`). `None` only for a unit that systemd cannot find at all.
    pub async fn state(&self, unit: &str) -> Result<Option<UnitState>, BusError> {
        let path = match self.loaded_path(unit).await? {
            Some(p) => p,
            None => match self.manager.load_unit(unit).await {
                Ok(p) => p,
                Err(e) => match BusError::from_call(e, unit) {
                    BusError::NoSuchUnit(_) => return Ok(None),
                    other => return Err(other),
                },
            },
        };
        self.state_at(&path).await.map(Some)
    }

    /// The state of a loaded unit; `None` if it is not loaded (a transient unit that was
    /// garbage-collected).
    pub async fn state_if_loaded(&self, unit: &str) -> Result<Option<UnitState>, BusError> {
        match self.loaded_path(unit).await? {
            Some(path) => match self.state_at(&path).await {
                Ok(s) => Ok(Some(s)),
                Err(BusError::Protocol(zbus::Error::MethodError(..))) => Ok(None),
                Err(e) => Err(e),
            },
            None => Ok(None),
        }
    }

    async fn state_at(&self, path: &OwnedObjectPath) -> Result<UnitState, BusError> {
        let props = self.properties(path).await?;
        let unit = props.get_all(UNIT_IFACE).await?;
        // Not every unit is a service; a failure here leaves the service fields empty.
        let service = props.get_all(SERVICE_IFACE).await.unwrap_or_default();
        let invocation: Vec<u8> = get(&unit, "InvocationID").unwrap_or_default();
        Ok(UnitState {
            load_state: get(&unit, "LoadState").unwrap_or_default(),
            active_state: get(&unit, "ActiveState").unwrap_or_default(),
            sub_state: get(&unit, "SubState").unwrap_or_default(),
            result: get(&service, "Result").unwrap_or_default(),
            main_pid: get(&service, "MainPID").unwrap_or_default(),
            exec_main_code: get(&service, "ExecMainCode").unwrap_or_default(),
            exec_main_status: get(&service, "ExecMainStatus").unwrap_or_default(),
            n_restarts: get(&service, "NRestarts").unwrap_or_default(),
            active_enter_usec: get(&unit, "ActiveEnterTimestamp").unwrap_or_default(),
            inactive_enter_usec: get(&unit, "InactiveEnterTimestamp").unwrap_or_default(),
            exec_main_start_usec: get(&service, "ExecMainStartTimestamp").unwrap_or_default(),
            exec_main_exit_usec: get(&service, "ExecMainExitTimestamp").unwrap_or_default(),
            invocation_id: invocation.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// Waits until the unit is no longer running (inactive or failed, or gone), and returns
    /// its last state if it is still loaded. Woken by `PropertiesChanged` and `UnitRemoved`,
    /// with a periodic re-check as a safety net.
    pub async fn wait_stopped(&self, unit: &str) -> Result<Option<UnitState>, BusError> {
        let mut removed = self
            .manager
            .receive_unit_removed_with_args(&[(0, unit)])
            .await?;
        self.subscribe().await?;
        let Some(path) = self.loaded_path(unit).await? else {
            return Ok(None);
        };
        let props = self.properties(&path).await?;
        let mut changed = props.receive_properties_changed().await?;
        loop {
            match self.state_at(&path).await {
                Ok(state) if !state.is_running() => return Ok(Some(state)),
                Ok(_) => {}
                Err(_) if self.loaded_path(unit).await?.is_none() => return Ok(None),
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = changed.next() => {}
                Some(signal) = removed.next() => {
                    // Only a unit that is really gone ends the wait (a removal signal may
                    // concern an earlier object of the same name, or be one of systemd's
                    // announcements while the unit is still loaded).
                    if signal.args().map(|a| a.unit() == &unit).unwrap_or(false)
                        && self.loaded_path(unit).await?.is_none()
                    {
                        return Ok(None);
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
}

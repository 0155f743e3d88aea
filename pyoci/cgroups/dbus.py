"""systemd's manager on the system bus: transient units, their properties and the jobs that start and stop them.

Only the systemd cgroup driver imports this module (and with it jeepney, a pure-Python D-Bus client): the
cgroupfs driver's commands never pay for it. Every call is blocking, with a timeout; a D-Bus error becomes a
``SystemdError`` carrying systemd's error name (``org.freedesktop.systemd1.NoSuchUnit``...) and message.
"""
from __future__ import annotations

from collections import deque

from jeepney import DBusAddress, HeaderFields, MatchRule, Message, MessageType, Properties, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

from pyoci.errors import ContainerError

MANAGER = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                      interface="org.freedesktop.systemd1.Manager")
CALL_TIMEOUT = 30.0  # as runc: a busy systemd can take seconds
JOB_TIMEOUT = 30.0
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"


class SystemdError(ContainerError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class Manager:
    """One connection to the system bus, closed by ``close`` (or ``with``)."""

    def __init__(self) -> None:
        try:
            self.conn = open_dbus_connection(bus="SYSTEM", auth_timeout=CALL_TIMEOUT)
        except (OSError, ValueError) as e:  # ValueError: jeepney's authentication was refused
            raise ContainerError("--systemd-cgroup: cannot connect to the system bus (is dbus running?): %s"
                                 % (getattr(e, "strerror", None) or e)) from None
        self._jobs: MatchRule | None = None
        self._version: int | None = None

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def call(self, method: str, signature: str = "", *args: object) -> tuple:
        """A method of systemd's Manager; its reply's body."""
        return self.send(method, new_method_call(MANAGER, method, signature, args))

    def send(self, method: str, msg: Message) -> tuple:
        try:
            reply = self.conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
        except TimeoutError:
            raise ContainerError("systemd did not answer %s within %d s" % (method, CALL_TIMEOUT)) from None
        except OSError as e:
            raise ContainerError("systemd %s: the system bus connection failed: %s" % (method, e.strerror)) \
                from None
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "")
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else name
            raise SystemdError(name, text)
        return reply.body

    def version(self) -> int:
        """systemd's version number (252 for "252.22-1~deb12u1"), 0 when unknown."""
        if self._version is None:
            try:
                (_sig, v), = self.send("Get", Properties(MANAGER).get("Version"))
                digits = str(v).lstrip('"v')
                n = len(digits) - len(digits.lstrip("0123456789"))
                self._version = int(digits[:n]) if n else 0
            except ContainerError:
                self._version = 0
        return self._version

    def _watch_jobs(self) -> MatchRule:
        """Ask for JobRemoved (before the first job: its signal is queued, never missed); the subscription ends
        with the connection."""
        if self._jobs is None:
            # no sender in the rule: signals carry systemd's unique name, which jeepney's local filter would
            # compare with the well-known one (only systemd may send on its own path and interface anyway)
            rule = MatchRule(type="signal", interface=MANAGER.interface, member="JobRemoved",
                             path=MANAGER.object_path)
            self.conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=CALL_TIMEOUT)
            self.call("Subscribe")  # systemd sends its job signals only to subscribed clients
            self._jobs = rule
        return self._jobs

    def run_job(self, method: str, signature: str, *args: object) -> str:
        """Call a method that queues a job and wait for the job's end; returns its result ("done", "failed",
        "canceled", "timeout", "dependency", "skipped")."""
        rule = self._watch_jobs()
        with self.conn.filter(rule, queue=deque()) as queue:
            job, = self.call(method, signature, *args)
            while True:
                try:
                    sig = self.conn.recv_until_filtered(queue, timeout=JOB_TIMEOUT)
                except TimeoutError:
                    raise ContainerError("systemd did not finish the job of %s %s within %d s"
                                         % (method, args[0], JOB_TIMEOUT)) from None
                _id, path, _unit, result = sig.body
                if path == job:
                    return result

    def start_transient(self, unit: str, properties: list[tuple[str, tuple[str, object]]]) -> str:
        return self.run_job("StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "replace", properties, [])

    def stop(self, unit: str) -> str:
        return self.run_job("StopUnit", "ss", unit, "replace")

    def set_properties(self, unit: str, properties: list[tuple[str, tuple[str, object]]]) -> None:
        self.call("SetUnitProperties", "sba(sv)", unit, True, properties)

    def reset_failed(self, unit: str) -> None:
        self.call("ResetFailedUnit", "s", unit)

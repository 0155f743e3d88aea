"""config.md#process, #posix-process, #linux-process, #user, #hostname, #domainname: what the
container process sees, reported from inside by /probe."""

from __future__ import annotations

import os

from ..core import MUST, SHOULD, T, case


def _probe(t: T, *snippets: str, bundle=None, console=False):
    b = bundle or t.bundle
    if snippets:
        b.probe(*snippets)
    p = t.run_probe(b, console=console)
    t.check(p.complete, f"/probe ran to completion ({p.describe()})")
    return p


# --------------------------------------------------------------------------- args, env, cwd

@case("process.args", "config.md#process", MUST,
      "args are the program's argv (execvp semantics, args[0] looked up in PATH)",
      mutants=("cfg:args-drop-last",))
def process_args(t: T):
    t.bundle.set_args("sh", "-c", 'for a in "$0" "$@"; do echo "arg=$a"; done; echo "probe.done=1"',
                      "zero", "one two", "", "three")
    p = _probe(t)
    t.eq(p.all("arg"), ["zero", "one two", "", "three"], "argv seen by the program")


@case("process.args-empty", "config.md#process", MUST,
      "args needs at least one entry: empty args are an error (create or start fails)",
      mutants=("cfg:args-default",))
def process_args_empty(t: T):
    t.bundle.set_args()
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start with empty process.args")
    else:
        t.log(f"ok: create refused empty args ({res.brief()})")


@case("process.args-not-found", "runtime.md#lifecycle", MUST,
      "a program that cannot be executed is an error (create or start fails)",
      mutants=("op:errors-rc0",))
def process_args_not_found(t: T):
    t.bundle.set_args("/no/such/program")
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start of a container whose program does not exist")
    else:
        t.log(f"ok: create already failed ({res.brief()})")


@case("process.env", "config.md#process", MUST,
      "env is the program's environment (values with spaces and `=` kept verbatim)",
      mutants=("cfg:env-drop-last",))
def process_env(t: T):
    t.bundle.process["env"] += ["CONF_A=1", "CONF_SPACES=a b  c", "CONF_EQ=x=y=z", "CONF_EMPTY="]
    p = _probe(t)
    env = p.env
    for e in t.bundle.process["env"]:
        k, _, v = e.partition("=")
        t.eq(env.get(k), v, f"env {k}")


@case("process.cwd", "config.md#process", MUST,
      "cwd is the working directory of the program",
      mutants=("cfg:cwd-root",))
def process_cwd(t: T):
    (t.bundle.rootfs / "work" / "dir").mkdir(parents=True)
    t.bundle.process["cwd"] = "/work/dir"
    p = _probe(t)
    t.eq(p.get("cwd"), "/work/dir", "cwd")


@case("process.cwd-relative", "config.md#valid-values", MUST,
      "a relative cwd (it MUST be absolute) is an invalid value: create or start fails",
      mutants=("cfg:cwd-absolutize",))
def process_cwd_relative(t: T):
    t.bundle.process["cwd"] = "tmp"
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start with a relative cwd")
    else:
        t.log(f"ok: create refused the relative cwd ({res.brief()})")


# --------------------------------------------------------------------------- user

@case("process.user", "config.md#user", MUST,
      "user.uid/gid set the real, effective, saved and fs ids",
      mutants=("cfg:user-root",))
def process_user(t: T):
    t.bundle.process["user"] = {"uid": 1234, "gid": 2345}
    p = _probe(t)
    t.eq(p.get("status.Uid"), "1234 1234 1234 1234", "Uid (real effective saved fs)")
    t.eq(p.get("status.Gid"), "2345 2345 2345 2345", "Gid (real effective saved fs)")


@case("process.additionalGids", "config.md#user", MUST,
      "user.additionalGids are the supplementary groups",
      mutants=("cfg:drop-additionalGids",))
def process_additional_gids(t: T):
    t.bundle.process["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [5, 100, 3456]}
    p = _probe(t)
    t.check({5, 100, 3456} <= p.groups, f"supplementary groups {sorted(p.groups)} include 5, 100, 3456")
    t.check(p.groups <= {5, 100, 3456, 2345},
            f"no other supplementary groups than additionalGids (+gid): {sorted(p.groups)}")


@case("process.umask", "config.md#user", MUST,
      "user.umask sets the umask (or the runtime reports an error if unsupported)",
      mutants=("cfg:drop-umask",))
def process_umask(t: T):
    t.bundle.process["user"] = {"uid": 0, "gid": 0, "umask": 0o27}
    t.bundle.probe()
    c = t.container()
    res = c.create(check=False)
    if not res.ok:
        t.log(f"ok: runtime refused umask ({res.brief()})")
        return
    p = c.run_to_exit()
    t.eq(p.get("umask"), "0027", "umask")


# --------------------------------------------------------------------------- terminal

@case("process.terminal", "config.md#process", MUST,
      "terminal: the pty master goes to --console-socket, stdio of the program is the pty",
      mutants=("cfg:terminal-off",))
def process_terminal(t: T):
    t.bundle.process["terminal"] = True
    p = _probe(t, console=True)
    t.eq((p.get("tty.stdin"), p.get("tty.stdout")), ("yes", "yes"), "stdin/stdout are ttys")
    t.check((p.get("tty") or "").startswith(("/dev/pts/", "/dev/console")),
            f"tty name {p.get('tty')!r}")


@case("process.consoleSize", "config.md#process", SHOULD,
      "consoleSize sets the terminal size",
      mutants=("cfg:drop-consoleSize",))
def process_console_size(t: T):
    t.bundle.process["terminal"] = True
    t.bundle.process["consoleSize"] = {"height": 33, "width": 101}
    p = _probe(t, 'kv stty "$(stty size)"', console=True)
    t.eq(p.get("stty"), "33 101", "stty size (rows cols)")


@case("devices.console", "config-linux.md#default-devices", MUST,
      "with terminal, /dev/console is the pseudoterminal (bind-mounted pty)",
      mutants=("cfg:terminal-off",))
def devices_console(t: T):
    t.bundle.process["terminal"] = True
    p = _probe(t, 'kv console.same "$( [ /dev/console -ef "$(tty)" ] && echo yes || echo no)"',
               console=True)
    d = p.devs.get("/dev/console")
    t.check(d is not None and d.kind == "character special file",
            f"/dev/console is a character device ({d})")
    t.eq(d.major, 136, "/dev/console major (a /dev/pts pty)")
    t.eq(p.get("console.same"), "yes", "/dev/console is the process's terminal")


# --------------------------------------------------------------------------- rlimits

@case("process.rlimits", "config.md#posix-process", MUST,
      "rlimits: getrlimit of each type matches soft and hard",
      mutants=("cfg:rlimits-swap",))
def process_rlimits(t: T):
    t.bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
        {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_NPROC", "soft": 1111, "hard": 2222},
        {"type": "RLIMIT_MSGQUEUE", "soft": 12345, "hard": 23456},
    ]
    p = _probe(t)
    lim = p.limits
    for r in t.bundle.process["rlimits"]:
        t.eq(lim.get(r["type"]), (str(r["soft"]), str(r["hard"])), f"{r['type']} (soft, hard)")


@case("process.rlimits-invalid", "config.md#posix-process", MUST,
      "an rlimit type that maps to no kernel interface is an error",
      mutants=("cfg:rlimits-drop-invalid",))
def process_rlimits_invalid(t: T):
    t.bundle.process["rlimits"] = [{"type": "RLIMIT_NOSUCHTHING", "soft": 1, "hard": 1}]
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start with an invalid rlimit type")
    else:
        t.log(f"ok: create refused the invalid rlimit ({res.brief()})")


@case("process.rlimits-duplicate", "config.md#posix-process", MUST,
      "duplicated rlimit types are an error",
      mutants=("cfg:rlimits-dedup",))
def process_rlimits_duplicate(t: T):
    t.bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                                   {"type": "RLIMIT_NOFILE", "soft": 300, "hard": 400}]
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start with duplicated rlimits")
    else:
        t.log(f"ok: create refused duplicated rlimits ({res.brief()})")


# --------------------------------------------------------------------------- capabilities

@case("process.capabilities", "config.md#linux-process", MUST,
      "capability sets (bounding, effective, permitted, inheritable, ambient) as configured",
      mutants=("cfg:caps-add-sys-admin", "cfg:caps-drop-ambient"))
def process_capabilities(t: T):
    # a non-root user keeps exactly the configured sets across execve when effective =
    # permitted = inheritable = ambient
    keep = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"]
    t.bundle.process["user"] = {"uid": 1000, "gid": 1000}
    t.bundle.process["capabilities"] = {
        "bounding": keep + ["CAP_CHOWN"], "effective": keep, "permitted": keep,
        "inheritable": keep, "ambient": keep}
    t.bundle.process["noNewPrivileges"] = False
    p = _probe(t)
    for name, key in (("bounding", "Bnd"), ("effective", "Eff"), ("permitted", "Prm"),
                      ("inheritable", "Inh"), ("ambient", "Amb")):
        t.eq(sorted(p.caps(key)), sorted(t.bundle.process["capabilities"][name]), f"Cap{key}")


@case("process.capabilities-bounding", "config.md#linux-process", MUST,
      "a capability left out of the bounding set is unavailable even to root",
      mutants=("cfg:caps-add-sys-admin",))
def process_capabilities_bounding(t: T):
    caps = ["CAP_KILL", "CAP_SETUID", "CAP_SETGID"]
    t.bundle.process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    p = _probe(t, "touch /tmp/f", "try chown chown 1:1 /tmp/f")
    t.eq(sorted(p.caps("Bnd")), sorted(caps), "CapBnd")
    t.check(p.caps("Eff") <= set(caps), f"CapEff {sorted(p.caps('Eff'))} within the bounding set")
    t.check("CAP_CHOWN" not in p.caps("Eff") and "CAP_SYS_ADMIN" not in p.caps("Eff"),
            "CAP_CHOWN / CAP_SYS_ADMIN not effective")
    t.check((p.get("chown") or "").startswith("fail"), f"chown without CAP_CHOWN fails ({p.get('chown')})")


@case("process.capabilities-unknown", "config.md#linux-process", SHOULD,
      "an unknown capability is a warning, not a failure",
      mutants=("op:create-fails-on-unknown-cap",))
def process_capabilities_unknown(t: T):
    caps = t.bundle.process["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        caps[k] = caps[k] + ["CAP_NOT_A_REAL_CAPABILITY"]
    p = _probe(t)
    t.check("CAP_KILL" in p.caps("Eff"), "the known capabilities are applied")


@case("process.noNewPrivileges", "config.md#linux-process", MUST,
      "noNewPrivileges true sets no_new_privs; false leaves it unset",
      mutants=("cfg:flip-noNewPrivileges",))
def process_nnp(t: T):
    t.bundle.process["noNewPrivileges"] = True
    p = _probe(t)
    t.eq(p.get("status.NoNewPrivs"), "1", "NoNewPrivs with noNewPrivileges=true")
    b2 = t.new_bundle()
    b2.process["noNewPrivileges"] = False
    p2 = _probe(t, bundle=b2)
    t.eq(p2.get("status.NoNewPrivs"), "0", "NoNewPrivs with noNewPrivileges=false")


@case("process.oomScoreAdj", "config.md#linux-process", MUST,
      "oomScoreAdj is written to the process's oom_score_adj",
      mutants=("cfg:drop-oomScoreAdj",))
def process_oom_score_adj(t: T):
    t.bundle.process["oomScoreAdj"] = 123
    p = _probe(t)
    t.eq(p.get("oom_score_adj"), "123", "oom_score_adj")


@case("process.oomScoreAdj-unset", "config.md#linux-process", MUST,
      "without oomScoreAdj the runtime does not change oom_score_adj (inherits the caller's)",
      mutants=("cfg:set-oomScoreAdj",))
def process_oom_score_adj_unset(t: T):
    t.bundle.process.pop("oomScoreAdj", None)
    t.bundle.probe()
    c = t.container()
    # the runtime is started with oom_score_adj 77 (set by a shell that then execs it)
    c.create(prefix=["/bin/sh", "-c", 'echo 77 > /proc/self/oom_score_adj && exec "$@"', "sh"])
    p = c.run_to_exit()
    t.eq(p.get("oom_score_adj"), "77", "oom_score_adj (the caller's value)")


# --------------------------------------------------------------------------- uts

@case("config.hostname", "config.md#hostname", MUST,
      "hostname is set in the container's UTS namespace",
      mutants=("cfg:drop-hostname",))
def config_hostname(t: T):
    t.bundle.config["hostname"] = "conformance-host"
    p = _probe(t)
    t.eq(p.get("hostname"), "conformance-host", "hostname")
    t.check(os.uname().nodename != "conformance-host", "host hostname unchanged")


@case("config.domainname", "config.md#domainname", MUST,
      "domainname is set in the container's UTS namespace (or create reports an error)",
      mutants=("cfg:drop-domainname",))
def config_domainname(t: T):
    t.bundle.config["domainname"] = "conformance.test"
    t.bundle.probe()
    c = t.container()
    res = c.create(check=False)
    if not res.ok:
        t.log(f"ok: runtime refused domainname ({res.brief()})")
        return
    p = c.run_to_exit()
    t.eq(p.get("domainname"), "conformance.test", "domainname")


# --------------------------------------------------------------------------- extensibility

@case("config.unknown-properties", "config.md#extensibility", MUST,
      "unknown properties and annotation keys are ignored",
      mutants=("op:create-fails-on-unknown",))
def config_unknown(t: T):
    t.bundle.config["org.example.unknownTopLevel"] = {"a": [1, 2]}
    t.bundle.process["org.example.unknownProcess"] = True
    t.bundle.linux["org.example.unknownLinux"] = "x"
    t.bundle.config["annotations"] = {"org.example.unknown.annotation": "v"}
    p = _probe(t)
    t.eq(p.get("hostname"), t.bundle.config["hostname"], "container ran normally (hostname)")

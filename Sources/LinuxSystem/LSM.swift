import Glibc

/// Linux security modules the runtime can apply labels with.
public enum LSM {
    public static var appArmorEnabled: Bool {
        (try? FS.readString("/sys/module/apparmor/parameters/enabled"))?.hasPrefix("Y") ?? false
    }

    public static var seLinuxEnabled: Bool { FS.exists("/sys/fs/selinux/enforce") }

    /// Sets the AppArmor profile (or SELinux label) the next execve switches to.
    public static func setExecLabel(appArmorProfile: String?, seLinuxLabel: String?) throws(SysError) {
        if let p = appArmorProfile, !p.isEmpty {
            let path = FS.exists("/proc/self/attr/apparmor/exec") ? "self/attr/apparmor/exec" : "self/attr/exec"
            try Procfs.write(path, "exec " + p)
        }
        if let l = seLinuxLabel, !l.isEmpty {
            try Procfs.write("self/attr/exec", l)
        }
    }
}

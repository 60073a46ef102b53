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
            let path = FS.exists("/proc/self/attr/apparmor/exec") ? "/proc/self/attr/apparmor/exec" : "/proc/self/attr/exec"
            try FS.writeFile(path, "exec " + p, create: false)
        }
        if let l = seLinuxLabel, !l.isEmpty {
            try FS.writeFile("/proc/self/attr/exec", l, create: false)
        }
    }
}

/// Builds the `/leakvisor/command` script that the guest `/init` runs with
/// `sh /leakvisor/command` (stdio on the console; its exit status becomes the
/// VM's exit status, reported through the control page). It travels in the `GuestPayload`.
public enum GuestCommand {
    /// A POSIX sh script that `exec`s `arguments` (program first), each argument
    /// single-quoted so that spaces, quotes, `$`, globs and newlines reach the
    /// program unchanged. An empty argument list yields a script that exits 0.
    /// NUL characters cannot be passed to a program and are removed.
    public static func script(arguments: [String]) -> String {
        guard !arguments.isEmpty else { return "#!/bin/sh\nexit 0\n" }
        return "#!/bin/sh\nexec " + arguments.map(quote).joined(separator: " ") + "\n"
    }

    /// `value` as one single-quoted sh word: `it's` becomes `'it'\''s'`.
    public static func quote(_ value: String) -> String {
        var quoted = "'"
        for scalar in value.unicodeScalars where scalar != "\0" {
            if scalar == "'" { quoted += "'\\''" } else { quoted.unicodeScalars.append(scalar) }
        }
        return quoted + "'"
    }
}

import CElfDW
import Glibc

/// The message for the calling thread's most recent libelf error.
func libelfMessage() -> String {
    guard let text = elf_errmsg(-1) else { return "unknown libelf error" }
    return String(cString: text)
}

/// The message for the calling thread's most recent libdw/libdwfl error.
func dwflMessage() -> String {
    guard let text = dwfl_errmsg(-1) else { return "unknown libdwfl error" }
    return String(cString: text)
}

/// `strerror` text for an `errno` value.
func systemErrorText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

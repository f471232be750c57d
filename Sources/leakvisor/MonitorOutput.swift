import Foundation
import Synchronization
import VMM

/// The monitor's own messages and reports, on stderr: byte for byte to a file or pipe; on a
/// terminal through `MonitorTerminalText` (escaped and bold), so that guest console lines, which
/// reach the terminal sanitised, can never pass as the monitor's. On a terminal one status line
/// (boot progress) may be shown in place below the messages.
enum MonitorOutput {
    static let toTerminal = isatty(2) == 1

    /// The in-place status line: what it says, and whether it is retired for good (the guest's
    /// console began writing to the same terminal).
    private struct StatusLine {
        var text: String?
        var retired = false
    }

    private static let status = Mutex(StatusLine())
    private static let clearLine = "\r\u{1B}[2K"

    static func write(_ text: String) {
        guard toTerminal else {
            FileHandle.standardError.write(Data(text.utf8))
            return
        }
        status.withLock { s in
            var out = s.text != nil && !s.retired ? clearLine : ""
            out += MonitorTerminalText.render(text)
            if let line = s.text, !s.retired, text.hasSuffix("\n") { out += MonitorTerminalText.render(line) }
            FileHandle.standardError.write(Data(out.utf8))
        }
    }

    /// One `leakvisor: ` line.
    static func say(_ text: String) { write("leakvisor: \(text)\n") }

    /// Shows `text` as the status line in place of the previous one (nil removes it); only on a
    /// terminal, and only until the status line is retired. Returns whether it is shown.
    @discardableResult
    static func showStatus(_ text: String?) -> Bool {
        guard toTerminal else { return false }
        return status.withLock { s in
            guard !s.retired else { return false }
            var out = s.text != nil ? clearLine : ""
            s.text = text.map { "leakvisor: \($0)" }
            if let line = s.text { out += MonitorTerminalText.render(line) }
            if !out.isEmpty { FileHandle.standardError.write(Data(out.utf8)) }
            return text != nil
        }
    }

    /// Removes the status line for good: other output (the guest's console) now owns the terminal.
    static func retireStatus() {
        status.withLock { s in
            guard !s.retired else { return }
            s.retired = true
            if s.text != nil, toTerminal { FileHandle.standardError.write(Data(clearLine.utf8)) }
            s.text = nil
        }
    }

    /// Text that ends up on stderr some other way (an error message): escaped on a terminal.
    static func quotedOnStandardError(_ text: String) -> String {
        toTerminal ? TerminalSanitizer.sanitize(text) : text
    }

    /// Text for stdout (`inspect`, `report`) that quotes the guest: escaped when stdout is a terminal.
    static func printable(_ text: String) -> String {
        isatty(1) == 1 ? TerminalSanitizer.sanitize(text) : text
    }
}

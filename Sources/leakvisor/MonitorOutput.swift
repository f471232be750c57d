import Foundation
import VMM

/// The monitor's own messages and reports, on stderr: byte for byte to a file or pipe; on a
/// terminal through `MonitorTerminalText` (escaped and bold), so that guest console lines, which
/// reach the terminal sanitised, can never pass as the monitor's.
enum MonitorOutput {
    static let toTerminal = isatty(2) == 1

    static func write(_ text: String) {
        FileHandle.standardError.write(Data((toTerminal ? MonitorTerminalText.render(text) : text).utf8))
    }

    /// One `leakvisor: ` line.
    static func say(_ text: String) { write("leakvisor: \(text)\n") }

    /// Text that ends up on stderr some other way (an error message): escaped on a terminal.
    static func quotedOnStandardError(_ text: String) -> String {
        toTerminal ? TerminalSanitizer.sanitize(text) : text
    }

    /// Text for stdout (`inspect`, `report`) that quotes the guest: escaped when stdout is a terminal.
    static func printable(_ text: String) -> String {
        isatty(1) == 1 ? TerminalSanitizer.sanitize(text) : text
    }
}

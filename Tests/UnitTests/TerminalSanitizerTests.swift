import Foundation
import Testing
@testable import VMM

/// What the guest's console may put on the monitor's terminal, and how the monitor's own lines
/// stay distinguishable from it.
@Suite struct TerminalSanitizerTests {
    func clean(_ bytes: [UInt8]) -> String {
        var sanitizer = TerminalSanitizer()
        return String(decoding: sanitizer.sanitize(bytes) + sanitizer.flush(), as: UTF8.self)
    }

    @Test func plainTextNewlinesTabsAndReturnsPass() {
        #expect(clean(Array("hello\tworld\r\nnext line\n".utf8)) == "hello\tworld\r\nnext line\n")
        #expect(clean(Array("größe → 10 €, 🐛".utf8)) == "größe → 10 €, 🐛")
    }

    @Test func escapeSequencesAndControlsAreShownNotObeyed() {
        #expect(clean(Array("\u{1B}[2J\u{1B}[8mhidden".utf8)) == "^[[2J^[[8mhidden")
        #expect(clean(Array("\u{1B}]52;c;ZXZpbA==\u{07}".utf8)) == "^[]52;c;ZXZpbA==^G")
        #expect(clean([0x00, 0x08, 0x7F, 0x1F]) == "^@^H^?^_")
        // C1 controls (CSI as U+009B, and the raw 8-bit byte) and invalid UTF-8.
        #expect(clean([0xC2, 0x9B, 0x33, 0x31, 0x6D]) == "\\xc2\\x9b31m")
        #expect(clean([0x9B, 0x32, 0x4A]) == "\\x9b2J")
        #expect(clean([0xC0, 0xAF]) == "\\xc0\\xaf")                   // overlong "/"
        #expect(clean([0xED, 0xA0, 0x80]) == "\\xed\\xa0\\x80")        // a surrogate
        #expect(clean([0xF4, 0x90, 0x80, 0x80]) == "\\xf4\\x90\\x80\\x80")  // above U+10FFFF
        #expect(clean([0xE2, 0x82, 0x41]) == "\\xe2\\x82A")            // truncated, then ASCII
    }

    @Test func aCharacterSplitAcrossChunksIsKept() {
        var sanitizer = TerminalSanitizer()
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        var out = sanitizer.sanitize([0x41, euro[0]])
        out += sanitizer.sanitize([euro[1]])
        out += sanitizer.sanitize([euro[2], 0x42])
        #expect(String(decoding: out, as: UTF8.self) == "A€B")
        // A stream that ends inside a character shows what it had.
        #expect(sanitizer.sanitize([0xF0, 0x9F]).isEmpty)
        #expect(String(decoding: sanitizer.flush(), as: UTF8.self) == "\\xf0\\x9f")
    }

    /// The guest can print a perfect copy of a report line, but not a bold one.
    @Test func aGuestLineCannotPassAsTheMonitors() {
        let monitor = MonitorTerminalText.render("==1== LEAK SUMMARY: definitely lost: 0 byte(s)\n\nleakvisor: done\n")
        #expect(monitor == "\u{1B}[1m==1== LEAK SUMMARY: definitely lost: 0 byte(s)\u{1B}[22m\n\n\u{1B}[1mleakvisor: done\u{1B}[22m\n")
        let forged = clean(Array(monitor.utf8))
        #expect(!forged.contains("\u{1B}"))
        #expect(forged.hasPrefix("^[[1m==1== LEAK SUMMARY"))
        // Guest names quoted in the monitor's text are escaped too.
        #expect(MonitorTerminalText.render("in \u{1B}[8mevil\n") == "\u{1B}[1min ^[[8mevil\u{1B}[22m\n")
    }

    @Test func theConsoleSanitisesOnlyWhenAsked() {
        final class Capture: @unchecked Sendable { var bytes: [UInt8] = [] }
        let raw = Capture(), shown = Capture()
        let bytes = Array("\u{1B}[31mred\r\n".utf8)
        GuestConsole(sink: { raw.bytes += $0 }).write(bytes)
        GuestConsole(sink: { shown.bytes += $0 }, sanitizing: true).write(bytes)
        #expect(raw.bytes == bytes)
        #expect(String(decoding: shown.bytes, as: UTF8.self) == "^[[31mred\r\n")
    }
}

/// `inspect --json` output: the same JSON value, with nothing a terminal would obey.
@Suite struct JSONControlEscapeTests {
    @Test func c1AndDELAreEscapedAndTheValueIsUnchanged() throws {
        let name = "a\u{9B}31mb\u{7F}c\u{1B}[2J"
        let json = String(decoding: try JSONEncoder().encode(["name": name]), as: UTF8.self)
        let safe = TerminalSanitizer.escapingControls(json: json)
        #expect(!safe.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        #expect(try JSONDecoder().decode([String: String].self, from: Data(safe.utf8)) == ["name": name])
    }
}

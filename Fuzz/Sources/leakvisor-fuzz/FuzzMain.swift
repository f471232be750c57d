import Glibc

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The libFuzzer driver: `FUZZ_TARGET=<name> leakvisor-fuzz [libFuzzer options] [corpus...]`.
@main enum FuzzMain {
    static func main() {
        guard let name = getenv("FUZZ_TARGET").map({ String(cString: $0) }), let target = FuzzTargets.named(name) else {
            let names = FuzzTargets.all.map(\.name).joined(separator: " ")
            printError("set FUZZ_TARGET to one of: \(names)")
            exit(2)
        }
        target.prepare()
        FuzzTargets.selected = target
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, count in
            FuzzTargets.selected?.run(FuzzInput(data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []))
            return 0
        })
    }
}

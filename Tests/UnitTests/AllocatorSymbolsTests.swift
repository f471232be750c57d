import AllocationLedger
import AllocationTracing
import Introspection
import LeakAnalysis
import Testing
import X86

@Suite struct AllocatorSymbolsTests {
    @Test func everyGlibcNameHasItsFunction() {
        let expected: [String: AllocatorFunction] = [
            "malloc": .malloc, "__libc_malloc": .malloc, "calloc": .calloc, "__libc_calloc": .calloc,
            "realloc": .realloc, "__libc_realloc": .realloc, "reallocarray": .reallocarray,
            "__libc_reallocarray": .reallocarray, "free": .free, "__libc_free": .free, "cfree": .free,
            "posix_memalign": .posixMemalign, "aligned_alloc": .memalign, "memalign": .memalign,
            "__libc_memalign": .memalign, "valloc": .valloc, "__libc_valloc": .valloc, "pvalloc": .pvalloc,
            "__libc_pvalloc": .pvalloc,
        ]
        for (name, function) in expected {
            #expect(AllocatorSymbols.entryPoint(named: name)?.function == function, "\(name)")
        }
        #expect(AllocatorSymbols.names.count == expected.count + 20 + AllocatorSymbolsTests.vendorNameCount)
        #expect(Set(AllocatorSymbols.names).count == AllocatorSymbols.names.count)
        for name in ["_Znwj", "malloc_usable_size", "__malloc_hook", "operator new", "", "_ZnwmPv", "strdup"] {
            #expect(AllocatorSymbols.entryPoint(named: name) == nil, "\(name)")
        }
    }

    @Test func publicNamesArePreferredOverAliases() throws {
        func rank(_ name: String) throws -> Int { try #require(AllocatorSymbols.preference(of: name)) }
        #expect(try rank("malloc") < rank("__libc_malloc"))
        #expect(try rank("free") < rank("cfree"))
        #expect(try rank("cfree") < rank("__libc_free"))
        #expect(try rank("memalign") < rank("aligned_alloc"))
        #expect(try rank("aligned_alloc") < rank("__libc_memalign"))
        #expect(AllocatorSymbols.preference(of: "strdup") == nil)
    }

    @Test func glibcConventionsFollowTheSysVABI() throws {
        func convention(_ name: String) throws -> AllocatorConvention {
            try #require(AllocatorSymbols.entryPoint(named: name)).convention
        }
        #expect(try convention("malloc") == AllocatorConvention(size: .register(.rdi), result: .returnRegister))
        #expect(try convention("calloc") == AllocatorConvention(size: .product(count: .rdi, size: .rsi), result: .returnRegister))
        #expect(try convention("realloc") == AllocatorConvention(size: .register(.rsi), oldPointer: .rdi, result: .returnRegister))
        #expect(
            try convention("reallocarray")
                == AllocatorConvention(size: .product(count: .rsi, size: .rdx), oldPointer: .rdi, result: .returnRegister))
        #expect(try convention("free") == AllocatorConvention(oldPointer: .rdi))
        #expect(try convention("cfree") == convention("free"))
        #expect(
            try convention("posix_memalign")
                == AllocatorConvention(size: .register(.rdx), alignment: .rsi, result: .storedThrough(.rdi)))
        #expect(try convention("memalign") == AllocatorConvention(size: .register(.rsi), alignment: .rdi, result: .returnRegister))
        #expect(try convention("aligned_alloc") == convention("memalign"))
        #expect(try convention("valloc") == convention("malloc"))
        #expect(try convention("pvalloc") == convention("malloc"))
    }

    @Test func operatorConventionsFollowTheMangledParameters() throws {
        for prefix in ["_Znw", "_Zna"] {
            let function: AllocatorFunction = prefix == "_Znw" ? .operatorNew : .operatorNewArray
            let cases: [(String, AllocatorConvention)] = [
                ("m", .init(size: .register(.rdi), result: .returnRegister)),
                ("mRKSt9nothrow_t", .init(size: .register(.rdi), result: .returnRegister, nothrow: true)),
                ("mSt11align_val_t", .init(size: .register(.rdi), alignment: .rsi, result: .returnRegister)),
                ("mSt11align_val_tRKSt9nothrow_t", .init(size: .register(.rdi), alignment: .rsi, result: .returnRegister, nothrow: true)),
            ]
            for (suffix, convention) in cases {
                #expect(AllocatorSymbols.entryPoint(named: prefix + suffix) == AllocatorEntryPoint(function: function, convention: convention))
            }
        }
        for prefix in ["_Zdl", "_Zda"] {
            let function: AllocatorFunction = prefix == "_Zdl" ? .operatorDelete : .operatorDeleteArray
            let cases: [(String, AllocatorConvention)] = [
                ("Pv", .init(oldPointer: .rdi)),
                ("Pvm", .init(size: .register(.rsi), oldPointer: .rdi)),
                ("PvRKSt9nothrow_t", .init(oldPointer: .rdi, nothrow: true)),
                ("PvSt11align_val_t", .init(oldPointer: .rdi, alignment: .rsi)),
                ("PvmSt11align_val_t", .init(size: .register(.rsi), oldPointer: .rdi, alignment: .rdx)),
                ("PvSt11align_val_tRKSt9nothrow_t", .init(oldPointer: .rdi, alignment: .rsi, nothrow: true)),
            ]
            for (suffix, convention) in cases {
                #expect(AllocatorSymbols.entryPoint(named: prefix + suffix) == AllocatorEntryPoint(function: function, convention: convention))
            }
        }
    }

    @Test func sizeArgumentsReadTheRegistersAndRefuseOverflow() {
        var registers = GeneralRegisters()
        registers.rdi = 3
        registers.rsi = 1 << 20
        registers.rdx = 5
        #expect(SizeArgument.none.bytes(in: registers) == nil)
        #expect(SizeArgument.register(.rdi).bytes(in: registers) == 3)
        #expect(SizeArgument.product(count: .rdi, size: .rsi).bytes(in: registers) == 3 << 20)
        registers.rsi = 1 << 63
        #expect(SizeArgument.product(count: .rdi, size: .rsi).bytes(in: registers) == nil)
    }

    @Test func registerNamesReadAndWriteTheirRegister() {
        var registers = GeneralRegisters()
        for register in GeneralRegisterName.allCases { register.set(0x100 + UInt64(register.rawValue), in: &registers) }
        #expect(registers.rax == 0x100 && registers.rsp == 0x104 && registers.rdi == 0x107 && registers.r15 == 0x10F)
        for register in GeneralRegisterName.allCases {
            #expect(register.value(in: registers) == 0x100 + UInt64(register.rawValue))
        }
        #expect(GeneralRegisterName.allCases.map(\.description).joined(separator: " ")
            == "rax rcx rdx rbx rsp rbp rsi rdi r8 r9 r10 r11 r12 r13 r14 r15")
        #expect(GeneralRegisterName(number: 16) == nil)
    }
}

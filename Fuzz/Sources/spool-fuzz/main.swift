// spool-fuzz <target> [libFuzzer options] [corpus directories or files]
//
// One libFuzzer executable for every fuzz target of Spool; the first argument names the target
// (see `FuzzDispatch.targets`), the rest go to libFuzzer. The target is also passed on in
// SPOOL_FUZZ_TARGET, because libFuzzer starts its child processes (-fork, -jobs,
// -minimize_crash, -merge) with its own arguments only. Built with `-sanitize=fuzzer` by
// scripts/fuzz.sh, which also sets SWIFT_BACKTRACE=enable=no: otherwise the Swift backtracer
// takes the crash before libFuzzer can save the input.
import CLibFuzzer
import Glibc

var arguments = CommandLine.arguments
let named = arguments.count >= 2 ? FuzzDispatch.targets.first { $0.name == arguments[1] } : nil
if let named {
    setenv("SPOOL_FUZZ_TARGET", named.name, 1)
    arguments.remove(at: 1)
}
let inherited = getenv("SPOOL_FUZZ_TARGET").map { String(cString: $0) }
guard let target = named ?? FuzzDispatch.targets.first(where: { $0.name == inherited }) else {
    let names = FuzzDispatch.targets.map(\.name).joined(separator: ", ")
    print("usage: \(arguments.first ?? "spool-fuzz") <target> [libFuzzer options] [corpus ...]\ntargets: \(names)")
    exit(2)
}
FuzzDispatch.selected = target.run

var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
var count = Int32(cArguments.count - 1)
let status = cArguments.withUnsafeMutableBufferPointer { buffer in
    var argv = buffer.baseAddress
    return LLVMFuzzerRunDriver(&count, &argv) { data, size in FuzzDispatch.run(data, size) }
}
exit(status)

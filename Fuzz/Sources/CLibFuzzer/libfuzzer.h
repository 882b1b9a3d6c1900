// libFuzzer's entry for programs that own `main` (SwiftPM renames an executable's main on Linux,
// so libFuzzer's own main cannot be used). Provided by -sanitize=fuzzer.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

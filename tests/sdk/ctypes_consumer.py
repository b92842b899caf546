"""The C ABI from Python's ctypes, as any language with an FFI would use it:
loads the installed libdiscarbiter.so.0 (argv[1]), declares the structs and
prototypes of discarbiter.h, and does connect, acquire, INQUIRY, READ(10),
release and disconnect against the service DISCARBITER_ENDPOINT names,
checking each HRESULT. Exits non-zero on the first mismatch."""
import ctypes
import sys

S_OK = 0
E_IMAPI_RECORDER_LOCKED = 0xC0AA0210 - (1 << 32)  # DA_HRESULT is a signed int32


class ConnectOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("endpoint", ctypes.c_char_p),
                ("client_name", ctypes.c_char_p), ("timeout_ms", ctypes.c_uint32)]


class CommandResult(ctypes.Structure):
    _fields_ = [("scsi_status", ctypes.c_uint8), ("sense_length", ctypes.c_uint32),
                ("bytes_transferred", ctypes.c_uint32)]


def load(path):
    lib = ctypes.CDLL(path)
    hr = ctypes.c_int32
    handle = ctypes.c_void_p
    u8p = ctypes.POINTER(ctypes.c_uint8)
    lib.da_version.restype = ctypes.c_char_p
    lib.da_version.argtypes = []
    lib.da_connect.restype = hr
    lib.da_connect.argtypes = [ctypes.POINTER(ConnectOptions), ctypes.POINTER(handle)]
    lib.da_disconnect.restype = None
    lib.da_disconnect.argtypes = [handle]
    lib.da_acquire_exclusive_access.restype = hr
    lib.da_acquire_exclusive_access.argtypes = [handle, ctypes.c_char_p, ctypes.c_uint32,
                                                ctypes.c_int32, ctypes.POINTER(ctypes.c_uint32)]
    lib.da_release_exclusive_access.restype = hr
    lib.da_release_exclusive_access.argtypes = [handle, ctypes.c_char_p,
                                                ctypes.POINTER(ctypes.c_uint32)]
    lib.da_send_command_get_data_from_device.restype = hr
    lib.da_send_command_get_data_from_device.argtypes = [
        handle, ctypes.c_char_p, u8p, ctypes.c_size_t, u8p, ctypes.c_size_t, ctypes.c_uint32,
        ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(CommandResult)]
    lib.da_get_last_error_message.restype = hr
    lib.da_get_last_error_message.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                              ctypes.POINTER(ctypes.c_size_t)]
    return lib


def main():
    lib = load(sys.argv[1])
    failures = 0

    def expect(ok, step, hr=None):
        nonlocal failures
        detail = ""
        if not ok:
            failures += 1
            message = ctypes.create_string_buffer(512)
            lib.da_get_last_error_message(message, len(message), None)
            detail = f" (HRESULT 0x{(hr or 0) & 0xFFFFFFFF:08X}: {message.value.decode()})"
        print(("ok   " if ok else "FAIL ") + step + detail, flush=True)
        return ok

    print("library", lib.da_version().decode())
    options = ConnectOptions(ctypes.sizeof(ConnectOptions), None, b"ctypes_consumer", 10000)
    client = ctypes.c_void_p()
    hr = lib.da_connect(ctypes.byref(options), ctypes.byref(client))
    if not expect(hr == S_OK and client.value, "da_connect", hr):
        return 1
    other = ctypes.c_void_p()
    options.client_name = b"ctypes_other"
    hr = lib.da_connect(ctypes.byref(options), ctypes.byref(other))
    expect(hr == S_OK, "da_connect (a second client)", hr)

    count = ctypes.c_uint32(99)
    hr = lib.da_acquire_exclusive_access(client, b"sim1", 0, 0, ctypes.byref(count))
    expect(hr == S_OK and count.value == 1, "da_acquire_exclusive_access, lock count 1", hr)
    hr = lib.da_acquire_exclusive_access(other, b"sim1", 0, 0, None)
    expect(hr == E_IMAPI_RECORDER_LOCKED, "the second client: E_IMAPI_RECORDER_LOCKED", hr)

    sense = (ctypes.c_uint8 * 32)()
    result = CommandResult()
    inquiry_cdb = (ctypes.c_uint8 * 6)(0x12, 0, 0, 0, 36, 0)
    data = (ctypes.c_uint8 * 36)()
    hr = lib.da_send_command_get_data_from_device(client, b"sim1", inquiry_cdb, 6, sense, 32, 0,
                                                  data, 36, ctypes.byref(result))
    expect(hr == S_OK and result.bytes_transferred == 36 and data[0] & 0x1F == 5
           and bytes(data[8:16]) == b"DISCARB ", "INQUIRY: an MMC device, vendor DISCARB", hr)

    read_cdb = (ctypes.c_uint8 * 10)(0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0)  # 2 blocks at LBA 0
    block = ctypes.create_string_buffer(4096)
    hr = lib.da_send_command_get_data_from_device(client, b"sim1", read_cdb, 10, sense, 32, 0,
                                                  block, 4096, ctypes.byref(result))
    expect(hr == S_OK and result.bytes_transferred == 4096 and result.scsi_status == 0,
           "READ(10) of 2 blocks into a Python buffer", hr)

    hr = lib.da_release_exclusive_access(client, b"sim1", ctypes.byref(count))
    expect(hr == S_OK and count.value == 0, "da_release_exclusive_access, lock count 0", hr)
    hr = lib.da_acquire_exclusive_access(other, b"sim1", 0, 0, None)
    expect(hr == S_OK, "the second client acquires it now", hr)

    lib.da_disconnect(other)
    lib.da_disconnect(client)
    print(("PASSED" if failures == 0 else "FAILED") + f": {failures} failure(s)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

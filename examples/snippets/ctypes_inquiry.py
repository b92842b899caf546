"""INQUIRY through the C ABI from Python's ctypes: connect, acquire, send, release."""
import ctypes
import sys

lib = ctypes.CDLL("discarbiter.dll" if sys.platform == "win32" else "libdiscarbiter.so.0")


class ConnectOptions(ctypes.Structure):  # da_connect_options
    _fields_ = [("struct_size", ctypes.c_uint32), ("endpoint", ctypes.c_char_p),
                ("client_name", ctypes.c_char_p), ("timeout_ms", ctypes.c_uint32)]


class CommandResult(ctypes.Structure):  # da_command_result
    _fields_ = [("scsi_status", ctypes.c_uint8), ("sense_length", ctypes.c_uint32),
                ("bytes_transferred", ctypes.c_uint32)]


HRESULT = ctypes.c_int32
lib.da_connect.argtypes = [ctypes.POINTER(ConnectOptions), ctypes.POINTER(ctypes.c_void_p)]
lib.da_connect.restype = HRESULT
lib.da_disconnect.argtypes = [ctypes.c_void_p]
lib.da_disconnect.restype = None
lib.da_acquire_exclusive_access.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32,
                                            ctypes.c_int32, ctypes.POINTER(ctypes.c_uint32)]
lib.da_acquire_exclusive_access.restype = HRESULT
lib.da_release_exclusive_access.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                            ctypes.POINTER(ctypes.c_uint32)]
lib.da_release_exclusive_access.restype = HRESULT
lib.da_send_command_get_data_from_device.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,  # client, drive, cdb
    ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,                  # sense, timeout_s
    ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(CommandResult)]    # buffer, result
lib.da_send_command_get_data_from_device.restype = HRESULT
lib.da_get_last_error_message.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                          ctypes.POINTER(ctypes.c_size_t)]
lib.da_get_last_error_message.restype = HRESULT


def check(hr, step):
    if hr < 0:
        message = ctypes.create_string_buffer(512)
        lib.da_get_last_error_message(message, len(message), None)
        raise OSError(f"{step}: HRESULT 0x{hr & 0xFFFFFFFF:08X}: {message.value.decode()}")
    return hr


def inquiry(drive=b"sim0"):
    options = ConnectOptions(ctypes.sizeof(ConnectOptions), None, b"PyBurner", 0)
    client = ctypes.c_void_p()
    check(lib.da_connect(ctypes.byref(options), ctypes.byref(client)), "connect")
    try:
        check(lib.da_acquire_exclusive_access(client, drive, 30000, 0, None), "acquire")
        cdb = bytes([0x12, 0, 0, 0, 36, 0])
        data = ctypes.create_string_buffer(36)  # the library writes into it: no copy
        sense = ctypes.create_string_buffer(18)
        result = CommandResult()
        check(lib.da_send_command_get_data_from_device(client, drive, cdb, len(cdb), sense,
                                                       len(sense), 0, data, len(data),
                                                       ctypes.byref(result)), "INQUIRY")
        check(lib.da_release_exclusive_access(client, drive, None), "release")
        return data.raw[8:16].decode().strip(), data.raw[16:32].decode().strip()
    finally:
        lib.da_disconnect(client)


if __name__ == "__main__":
    print(*inquiry(sys.argv[1].encode() if len(sys.argv) > 1 else b"sim0"))

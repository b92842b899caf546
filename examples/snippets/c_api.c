#include <stdint.h>
#include <stdio.h>

#include <discarbiter/discarbiter.h>

/* Prints the failed step, the HRESULT's name and the library's message. */
static int fail(const char* step, DA_HRESULT hr) {
  char name[64], message[512];
  da_get_error_name(hr, name, sizeof name, NULL);
  da_get_last_error_message(message, sizeof message, NULL);
  fprintf(stderr, "%s: %s (0x%08lX): %s\n", step, name, (unsigned long)(uint32_t)hr, message);
  return 1;
}

int inquire_c(const char* drive) {
  da_connect_options options = {sizeof options, NULL, "MyBurner", 0};
  da_client* client;
  DA_HRESULT hr = da_connect(&options, &client);
  if (DA_FAILED(hr))
    return fail("connect", hr);

  hr = da_acquire_exclusive_access(client, drive, 30000, 0, NULL); /* wait up to 30 s */
  if (DA_FAILED(hr)) {
    fail("acquire", hr);
    da_disconnect(client);
    return 1;
  }
  const uint8_t cdb[6] = {0x12, 0, 0, 0, 36, 0}; /* INQUIRY */
  uint8_t data[36], sense[18];
  da_command_result result;
  hr = da_send_command_get_data_from_device(client, drive, cdb, sizeof cdb, sense, sizeof sense, 0,
                                            data, sizeof data, &result);
  if (hr == DA_S_IMAPI_COMMAND_HAS_SENSE_DATA) {
    char why[128];
    da_explain_sense(sense, result.sense_length, why, sizeof why, NULL);
    fprintf(stderr, "INQUIRY: %s\n", why); /* "sense 5/24/00: invalid field in CDB" */
  } else if (DA_FAILED(hr)) {
    fail("INQUIRY", hr);
  } else {
    printf("%.8s %.16s\n", (const char*)data + 8, (const char*)data + 16);
  }
  da_release_exclusive_access(client, drive, NULL);
  da_disconnect(client); /* would free the lock too: locks die with their session */
  return DA_FAILED(hr) ? 1 : 0;
}

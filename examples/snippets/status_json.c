#include <stdlib.h>

#include <discarbiter/discarbiter.h>

/* The status document as JSON text, in a buffer that grows to fit: its size
 * changes between calls (the uptime and the counters grow), so fetch in a
 * loop. The caller frees *status. */
DA_HRESULT get_status_json(da_client* client, char** status) {
  size_t needed = 0;
  DA_HRESULT hr = da_get_status_json(client, NULL, 0, &needed); /* asks for the size */
  *status = NULL;
  while (hr == DA_E_INSUFFICIENT_BUFFER) { /* it grew since it was sized */
    char* grown = (char*)realloc(*status, needed);
    if (grown == NULL)
      return DA_E_OUTOFMEMORY;
    *status = grown;
    hr = da_get_status_json(client, *status, needed, &needed);
  }
  return hr;
}

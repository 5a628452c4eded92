/* memres-bench: what machine and which commit the figures come from. */
#include "bench.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_commit.h" /* MEMRES_BENCH_COMMIT, written at build time */

uint64_t bench_mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f)
    return 0;
  char line[256];
  unsigned long long kib = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
      break;
  fclose(f);
  return (uint64_t)kib * 1024u;
}

static void trim(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = 0;
}

void bench_cpu_model(char *buf, size_t len) {
  snprintf(buf, len, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) == 0) {
      char *colon = strchr(line, ':');
      if (colon) {
        colon++;
        while (*colon == ' ' || *colon == '\t')
          colon++;
        trim(colon);
        snprintf(buf, len, "%s", colon);
      }
      break;
    }
  }
  fclose(f);
}

int bench_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* The commit of the source tree at run time (git, if it is there), else the one of the last
 * build, else "unknown". */
void bench_git_commit(char *buf, size_t len) {
  snprintf(buf, len, "%s", MEMRES_BENCH_COMMIT);
#ifdef MEMRES_BENCH_SOURCE_DIR
  FILE *p = popen("git -C '" MEMRES_BENCH_SOURCE_DIR "' rev-parse --short HEAD 2>/dev/null", "r");
  if (!p)
    return;
  char line[64] = "";
  char *got = fgets(line, sizeof line, p);
  int rc = pclose(p);
  if (got && rc == 0) {
    trim(line);
    if (line[0])
      snprintf(buf, len, "%s", line);
  }
#endif
}

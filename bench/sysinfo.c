/* memres-bench: what machine and which commit the figures come from. */
#include "bench.h"

#include <sched.h>
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

static int read_int(const char *path, int *out) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  int ok = fscanf(f, "%d", out) == 1;
  fclose(f);
  return ok;
}

int bench_cpu_order(int *cpus, int cap) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
    return 0;
  int n = 0, pkg[CPU_SETSIZE], core[CPU_SETSIZE], all[CPU_SETSIZE];
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (!CPU_ISSET(c, &allowed))
      continue;
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", c);
    if (!read_int(path, &core[n]))
      core[n] = c;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", c);
    if (!read_int(path, &pkg[n]))
      pkg[n] = 0;
    all[n++] = c;
  }
  /* A CPU's rank: how many CPUs before it share its (package, core). Rank 0 first (one per
   * core), then rank 1 (the cores' second hyperthreads), and so on, each in CPU order. */
  int rank[CPU_SETSIZE], out = 0;
  for (int i = 0; i < n; i++) {
    rank[i] = 0;
    for (int j = 0; j < i; j++)
      rank[i] += pkg[j] == pkg[i] && core[j] == core[i];
  }
  for (int r = 0; out < n && out < cap; r++)
    for (int i = 0; i < n && out < cap; i++)
      if (rank[i] == r)
        cpus[out++] = all[i];
  return out;
}

/* The commit the binary was built from (bench_commit.h is rewritten at every build). Not asked
 * of git at run time: the GPU machine runs a copy whose checkout may name another commit. */
void bench_git_commit(char *buf, size_t len) { snprintf(buf, len, "%s", MEMRES_BENCH_COMMIT); }

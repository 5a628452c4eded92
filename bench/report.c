/* memres-bench: the reports — ratios within the run, the table on stdout, JSON, an SVG plot. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void bench_fmt_bytes(char *buf, size_t len, uint64_t b) {
  const uint64_t k = 1024, m = k * k, g = m * k;
  if (b >= g)
    snprintf(buf, len, b % g ? "%.1fGiB" : "%.0fGiB", (double)b / (double)g);
  else if (b >= m)
    snprintf(buf, len, b % m ? "%.1fMiB" : "%.0fMiB", (double)b / (double)m);
  else if (b >= k)
    snprintf(buf, len, b % k ? "%.1fKiB" : "%.0fKiB", (double)b / (double)k);
  else
    snprintf(buf, len, "%lluB", (unsigned long long)b);
}

static const bench_result *find(const bench_result *r, size_t n, const bench_case *c,
                                const char *alloc) {
  for (size_t i = 0; i < n; i++)
    if (r[i].c == c && r[i].outcome == BENCH_OK && strcmp(r[i].alloc, alloc) == 0)
      return &r[i];
  return NULL;
}

void bench_report_ratios(bench_result *r, size_t n) {
  for (size_t i = 0; i < n; i++) {
    bench_result *x = &r[i];
    x->ratio_base = x->ratio_pinned = x->speedup = NAN;
    x->base = NULL;
    if (x->outcome != BENCH_OK || strcmp(x->alloc, "memres") == 0)
      continue;
    x->base = x->kind == MR_HOST ? "malloc" : "cudaMallocAsync";
    const bench_result *b = find(r, n, x->c, x->base);
    if (b && b->med > 0)
      x->ratio_base = x->med / b->med;
    if (x->kind == MR_PINNED) {
      const bench_result *p = find(r, n, x->c, "pinned");
      if (p && p->med > 0)
        x->ratio_pinned = x->med / p->med;
    }
    if (x->threads > 0) {
      for (size_t j = 0; j < n; j++)
        if (r[j].threads == 1 && r[j].outcome == BENCH_OK && strcmp(r[j].alloc, x->alloc) == 0 &&
            strcmp(r[j].workload, x->workload) == 0 && x->med > 0)
          x->speedup = r[j].med / x->med;
    }
  }
}

static void fmt_ns(char *buf, size_t len, double v) {
  if (!(v >= 0))
    snprintf(buf, len, "-");
  else if (v < 10)
    snprintf(buf, len, "%.2f", v);
  else if (v < 100)
    snprintf(buf, len, "%.1f", v);
  else
    snprintf(buf, len, "%.0f", v);
}

static void fmt_ratio(char *buf, size_t len, double v) {
  if (isnan(v))
    snprintf(buf, len, "-");
  else if (v >= 100)
    snprintf(buf, len, "%.0f", v);
  else if (v >= 0.01)
    snprintf(buf, len, "%#.3g", v);
  else
    snprintf(buf, len, "%.2e", v);
}

static void notes(const bench_result *x, char *buf, size_t len) {
  buf[0] = 0;
  if (x->outcome == BENCH_SKIPPED) {
    snprintf(buf, len, "%s", x->note);
    return;
  }
  if (x->outcome == BENCH_ERROR) {
    snprintf(buf, len, "%s %s", mr_status_str(x->status), x->note);
    return;
  }
  size_t used = 0;
  if (x->has_pool) {
    char rsv[32];
    bench_fmt_bytes(rsv, sizeof rsv, x->stats.peak_reserved);
    int w = snprintf(buf, len, "peak rsv %s", rsv);
    used = w > 0 ? (size_t)w : 0;
    /* below a few segments the ratios say only how big a segment is: JSON has them all */
    const uint64_t meaningful = 16u << 20;
    if (x->stats.peak_in_use >= meaningful && used < len)
      used += (size_t)snprintf(buf + used, len - used, " rsv/use %.3f",
                               (double)x->stats.peak_reserved / (double)x->stats.peak_in_use);
    if (x->req_peak >= meaningful && used < len)
      used += (size_t)snprintf(buf + used, len - used, " rsv/req %.3f",
                               (double)x->stats.peak_reserved / (double)x->req_peak);
  }
  if (x->threads > 0 && x->med > 0 && used < len) {
    used +=
        (size_t)snprintf(buf + used, len - used, "%s%.2f Mop/s", used ? ", " : "", 1e3 / x->med);
    if (!isnan(x->speedup) && used < len)
      used += (size_t)snprintf(buf + used, len - used, " x%.2f vs 1 thread", x->speedup);
  }
  int64_t up = 0;
  int up_reps = 0;
  for (int k = 0; k < x->reps; k++)
    if (x->rep_upstream[k] > 0) {
      up += x->rep_upstream[k];
      up_reps++;
    }
  if (up && used < len)
    used += (size_t)snprintf(buf + used, len - used, "%s%lld upstream calls in %d of %d reps",
                             used ? "; " : "", (long long)up, up_reps, x->reps);
  if (x->warm_cut && used < len)
    used +=
        (size_t)snprintf(buf + used, len - used, "%swarm-up cut at %llu steps (%d ms)",
                         used ? "; " : "", (unsigned long long)x->warm_steps, BENCH_WARM_LIMIT_MS);
  if (x->note[0] && used < len)
    snprintf(buf + used, len - used, "%s%s", used ? "; " : "", x->note);
}

void bench_report_table(const bench_result *r, size_t n, const bench_machine *m) {
  (void)m;
  if (n == 0) {
    printf("\nnothing to measure: no selected allocator runs on this machine\n");
    return;
  }
  printf("\nns/op: median of the repetitions, with min and max (pair: one op = alloc + free;\n"
         "context: one push + pop, or one call). vs.base: ns/op over cudaMallocAsync's (device,\n"
         "pinned) or malloc's (host) in this run. vs.HostAlloc: pinned allocators over raw\n"
         "cudaHostAlloc's. Pools: rsv/use = peak reserved / peak in use (pool statistics),\n"
         "rsv/req = peak reserved / the workload's own peak of requested bytes (both shown where\n"
         "the peak is 16 MiB or more).\n\n");
  printf("%-8s %-24s %-17s %10s %10s %10s %8s %11s  %s\n", "workload", "params", "allocator",
         "ns/op", "min", "max", "vs.base", "vs.HostAlloc", "notes");
  const bench_case *last = NULL;
  for (size_t i = 0; i < n; i++) {
    const bench_result *x = &r[i];
    if (last && x->c != last)
      printf("\n");
    last = x->c;
    char med[24], mn[24], mx[24], rb[24], rp[24], nt[400];
    if (x->outcome == BENCH_OK) {
      fmt_ns(med, sizeof med, x->med);
      fmt_ns(mn, sizeof mn, x->min);
      fmt_ns(mx, sizeof mx, x->max);
    } else {
      snprintf(med, sizeof med, "%s", x->outcome == BENCH_SKIPPED ? "skipped" : "ERROR");
      snprintf(mn, sizeof mn, "-");
      snprintf(mx, sizeof mx, "-");
    }
    fmt_ratio(rb, sizeof rb, x->ratio_base);
    fmt_ratio(rp, sizeof rp, x->ratio_pinned);
    notes(x, nt, sizeof nt);
    printf("%-8s %-24s %-17s %10s %10s %10s %8s %11s  %s\n", x->workload, x->c->params, x->alloc,
           med, mn, mx, rb, rp, nt);
  }
  fflush(stdout);
}

/* ---- JSON ----------------------------------------------------------------------------------- */
void bench_json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c == '\t')
      fputs("\\t", f);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

void bench_json_num(FILE *f, double v) {
  if (isnan(v) || isinf(v))
    fputs("null", f);
  else
    fprintf(f, "%.6g", v);
}

void bench_json_strs(FILE *f, char *const *v, int n) {
  for (int i = 0; i < n; i++) {
    fputs(i ? ", " : "", f);
    bench_json_str(f, v[i]);
  }
}

void bench_json_nums(FILE *f, const double *v, int n) {
  for (int i = 0; i < n; i++) {
    fputs(i ? ", " : "", f);
    bench_json_num(f, v[i]);
  }
}

void bench_json_ints(FILE *f, const int64_t *v, int n) {
  for (int i = 0; i < n; i++)
    fprintf(f, "%s%lld", i ? ", " : "", (long long)v[i]);
}

static void json_machine(FILE *f, const bench_machine *m) {
  fprintf(f, "  \"machine\": {\n    \"cpu\": ");
  bench_json_str(f, m->cpu);
  fprintf(f, ",\n    \"cores\": %d,\n    \"mem_available_bytes\": %llu,\n    \"gpus\": %d,\n",
          m->cores, (unsigned long long)m->mem_available, m->gpus);
  fprintf(f, "    \"device\": ");
  bench_json_str(f, m->device);
  fprintf(f, ",\n    \"no_gpu_reason\": ");
  if (m->no_gpu[0])
    bench_json_str(f, m->no_gpu);
  else
    fputs("null", f);
  fprintf(f,
          ",\n    \"cuda_driver_version\": %d,\n    \"cuda_runtime_version\": %d,\n"
          "    \"built_with_cuda\": %s,\n    \"gpu_free_bytes\": %llu,\n"
          "    \"gpu_total_bytes\": %llu\n  },\n",
          m->driver, m->runtime, bcu_built() ? "true" : "false", (unsigned long long)m->gpu_free,
          (unsigned long long)m->gpu_total);
}

void bench_json_head(FILE *f, const char *kind, const bench_machine *m, int argc, char **argv) {
  fprintf(f, "{\n  \"%s\": 1,\n  \"memres_version\": ", kind);
  bench_json_str(f, mr_version_string());
  fprintf(f, ",\n  \"commit\": ");
  bench_json_str(f, m->commit);
  fprintf(f, ",\n  \"elapsed_s\": %.3f,\n", m->elapsed_s);
  json_machine(f, m);
  fprintf(f, "  \"options\": {\n    \"argv\": [");
  bench_json_strs(f, argv, argc);
}

int bench_report_json(const char *path, const bench_result *r, size_t n, const bench_machine *m,
                      const bench_opts *o, int argc, char **argv) {
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  bench_json_head(f, "memres_bench", m, argc, argv);
  fprintf(f, "],\n    \"allocators\": [");
  int first = 1;
  for (size_t i = 0; i < bench_allocator_count(); i++)
    if (o->sel_alloc[i]) {
      fputs(first ? "" : ", ", f);
      bench_json_str(f, bench_allocator_at(i)->name);
      first = 0;
    }
  fprintf(f, "],\n    \"workloads\": [");
  first = 1;
  for (size_t i = 0; i < bench_workload_count(); i++)
    if (o->sel_workload[i]) {
      fputs(first ? "" : ", ", f);
      bench_json_str(f, bench_workload_at(i)->name);
      first = 0;
    }
  fprintf(f,
          "],\n    \"reps\": %d,\n    \"rep_ms\": %g,\n    \"seed\": %llu,\n"
          "    \"quick\": %s\n  },\n  \"results\": [\n",
          o->reps, o->rep_ms, (unsigned long long)o->seed, o->quick ? "true" : "false");
  for (size_t i = 0; i < n; i++) {
    const bench_result *x = &r[i];
    fprintf(f, "    {\"workload\": ");
    bench_json_str(f, x->workload);
    fprintf(f, ", \"params\": ");
    bench_json_str(f, x->c->params);
    fprintf(f, ", \"allocator\": ");
    bench_json_str(f, x->alloc);
    fprintf(f, ", \"kind\": ");
    bench_json_str(f, mr_kind_str(x->kind));
    fprintf(f, ", \"outcome\": ");
    bench_json_str(f, x->outcome == BENCH_OK        ? "ok"
                      : x->outcome == BENCH_SKIPPED ? "skipped"
                                                    : "error");
    fprintf(f, ", \"status\": ");
    bench_json_str(f, mr_status_str(x->status));
    fprintf(f, ", \"note\": ");
    bench_json_str(f, x->note);
    fprintf(f, ",\n     \"unit\": ");
    bench_json_str(f, x->unit);
    fprintf(f, ", \"case_peak_bytes\": %llu, \"wall_s\": %.3f", (unsigned long long)x->c->peak,
            x->wall_s);
    if (x->outcome == BENCH_OK) {
      fprintf(f, ", \"iters_per_rep\": %llu, \"ops_per_rep\": %llu", (unsigned long long)x->iters,
              (unsigned long long)x->ops);
      fprintf(f, ",\n     \"ns_per_op\": {\"median\": ");
      bench_json_num(f, x->med);
      fprintf(f, ", \"min\": ");
      bench_json_num(f, x->min);
      fprintf(f, ", \"max\": ");
      bench_json_num(f, x->max);
      fprintf(f, ", \"reps\": [");
      bench_json_nums(f, x->rep_ns, x->reps);
      fprintf(f, "]}");
      if (x->has_pool) {
        fprintf(f, ", \"upstream_calls_per_rep\": [");
        bench_json_ints(f, x->rep_upstream, x->reps);
        fputc(']', f);
      }
      fprintf(f, ", \"ops_per_s\": ");
      bench_json_num(f, x->med > 0 ? 1e9 / x->med : NAN);
      fprintf(f, ",\n     \"base\": ");
      if (x->base)
        bench_json_str(f, x->base);
      else
        fputs("null", f);
      fprintf(f, ", \"ratio_base\": ");
      bench_json_num(f, x->ratio_base);
      fprintf(f, ", \"ratio_cudaHostAlloc\": ");
      bench_json_num(f, x->ratio_pinned);
      if (x->threads > 0) {
        fprintf(f, ", \"threads\": %d, \"speedup_vs_1_thread\": ", x->threads);
        bench_json_num(f, x->speedup);
      }
      fprintf(f, ", \"workload_peak_requested_bytes\": %llu", (unsigned long long)x->req_peak);
      if (x->warm_steps)
        fprintf(f, ", \"warm_up_steps\": %llu, \"warm_up_cut\": %s",
                (unsigned long long)x->warm_steps, x->warm_cut ? "true" : "false");
      if (x->has_pool) {
        char buf[2048];
        size_t need = mr_stats_json(&x->stats, buf, sizeof buf);
        fprintf(f, ",\n     \"pool\": {\"peak_reserved\": %llu, \"peak_in_use\": %llu",
                (unsigned long long)x->stats.peak_reserved,
                (unsigned long long)x->stats.peak_in_use);
        fprintf(f, ", \"reserved_over_in_use\": ");
        bench_json_num(f, x->stats.peak_in_use
                              ? (double)x->stats.peak_reserved / (double)x->stats.peak_in_use
                              : NAN);
        fprintf(f, ", \"reserved_over_requested\": ");
        bench_json_num(f, x->req_peak ? (double)x->stats.peak_reserved / (double)x->req_peak : NAN);
        if (need > 0 && need < sizeof buf)
          fprintf(f, ", \"stats\": %s", buf);
        fputc('}', f);
      }
    }
    fprintf(f, "}%s\n", i + 1 < n ? "," : "");
  }
  fprintf(f, "  ]\n}\n");
  return fclose(f) == 0 ? 0 : -1;
}

/* ---- SVG: grouped horizontal bars, ns/op on a log scale ---------------------------------------
 */
static void xml(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '<':
      fputs("&lt;", f);
      break;
    case '>':
      fputs("&gt;", f);
      break;
    case '&':
      fputs("&amp;", f);
      break;
    case '"':
      fputs("&quot;", f);
      break;
    default:
      fputc(*s, f);
    }
  }
}

static const char *const k_colors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                       "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
                                       "#1f77b4", "#8c564b", "#17becf", "#7f7f7f"};

static const char *color_of(const char *alloc) {
  size_t nc = sizeof k_colors / sizeof k_colors[0];
  for (size_t i = 0; i < bench_allocator_count(); i++)
    if (strcmp(bench_allocator_at(i)->name, alloc) == 0)
      return k_colors[i % nc];
  return "#333333";
}

/* 3 significant digits and a unit: "35.1 ns", "1.40 ms" */
static void fmt_time(char *buf, size_t len, double ns) {
  if (ns >= 1e9)
    snprintf(buf, len, "%.3g s", ns / 1e9);
  else if (ns >= 1e6)
    snprintf(buf, len, "%.3g ms", ns / 1e6);
  else if (ns >= 1e3)
    snprintf(buf, len, "%.3g us", ns / 1e3);
  else
    snprintf(buf, len, "%.3g ns", ns);
}

int bench_report_svg(const char *path, const bench_result *r, size_t n, const bench_machine *m) {
  const double L = 380, P = 560, R = 110, row = 15, bar = 11, head = 20, gap = 6, top = 78;
  double lo = INFINITY, hi = 0;
  size_t rows = 0, groups = 0;
  const bench_case *last = NULL;
  for (size_t i = 0; i < n; i++) {
    if (r[i].outcome != BENCH_OK || !(r[i].med > 0))
      continue;
    lo = fmin(lo, r[i].med);
    hi = fmax(hi, r[i].med);
    rows++;
    if (r[i].c != last)
      groups++;
    last = r[i].c;
  }
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  if (!rows) {
    lo = 1;
    hi = 10;
  }
  double l0 = floor(log10(lo)), l1 = ceil(log10(hi));
  if (l1 <= l0)
    l1 = l0 + 1;
  double height = top + (double)groups * (head + gap) + (double)rows * row + 40;
  double width = L + P + R;
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
          "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
          "font-size=\"11\">\n",
          width, height, width, height);
  fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  fprintf(f, "<text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">memres-bench: ns per "
             "op, log scale (shorter is faster)</text>\n");
  fprintf(f, "<text x=\"10\" y=\"40\" fill=\"#555\">");
  char info[512];
  snprintf(info, sizeof info, "GPU: %s | CPU: %s (%d cores) | commit %s", m->device, m->cpu,
           m->cores, m->commit);
  xml(f, info);
  fprintf(f, "</text>\n");
  /* decades: grid lines and labels */
  double y_end = height - 30;
  for (double d = l0; d <= l1 + 1e-9; d++) {
    double x = L + P * (d - l0) / (l1 - l0);
    char t[32];
    fmt_time(t, sizeof t, pow(10, d));
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n"
            "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" fill=\"#555\">%s</text>\n"
            "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" fill=\"#555\">%s</text>\n",
            x, top - 10, x, y_end, x, top - 14, t, x, y_end + 14, t);
  }
  double y = top;
  last = NULL;
  for (size_t i = 0; i < n; i++) {
    const bench_result *x = &r[i];
    if (x->outcome != BENCH_OK || !(x->med > 0))
      continue;
    if (x->c != last) {
      y += gap;
      char g[128];
      snprintf(g, sizeof g, "%s  %s", x->workload, x->c->params);
      fprintf(f, "<text x=\"10\" y=\"%.1f\" font-weight=\"bold\" font-size=\"12\">", y + 14);
      xml(f, g);
      fprintf(f, "</text>\n<line x1=\"10\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#999\"/>\n",
              y + 18, L + P, y + 18);
      y += head;
      last = x->c;
    }
    double w = P * (log10(x->med) - l0) / (l1 - l0);
    if (w < 1)
      w = 1;
    char v[32];
    fmt_time(v, sizeof v, x->med);
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", L - 8, y + bar - 1);
    xml(f, x->alloc);
    fprintf(f,
            "</text>\n<rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\">"
            "<title>",
            L, y, w, bar, color_of(x->alloc));
    char tip[160];
    snprintf(tip, sizeof tip, "%s %s %s: %s per %s (min %.4g ns, max %.4g ns)", x->workload,
             x->c->params, x->alloc, v, x->unit, x->min, x->max);
    xml(f, tip);
    fprintf(f, "</title></rect>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"#333\">%s</text>\n", L + w + 4,
            y + bar - 1, v);
    y += row;
  }
  fprintf(f, "</svg>\n");
  return fclose(f) == 0 ? 0 : -1;
}

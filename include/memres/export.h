/* memres: export macro and version. */
#ifndef MEMRES_EXPORT_H
#define MEMRES_EXPORT_H

#define MEMRES_VERSION_MAJOR 0
#define MEMRES_VERSION_MINOR 1
#define MEMRES_VERSION_PATCH 0
/* 0.1.0 -> 100 */
#define MEMRES_VERSION                                                                             \
  (MEMRES_VERSION_MAJOR * 10000 + MEMRES_VERSION_MINOR * 100 + MEMRES_VERSION_PATCH)

#if defined(MEMRES_STATIC_DEFINE)
#define MR_API
#elif defined(__GNUC__)
#define MR_API __attribute__((visibility("default")))
#else
#define MR_API
#endif

#ifdef __cplusplus
#define MR_EXTERN_C_BEGIN extern "C" {
#define MR_EXTERN_C_END }
#else
#define MR_EXTERN_C_BEGIN
#define MR_EXTERN_C_END
#endif

#endif

/*
 * faiss_compat.cpp - the few FAISS C API functions semcachefs uses, written
 * over the FAISS C++ library for systems (Debian 12's libfaiss-dev 1.7.3)
 * that ship the C API headers but no libfaiss_c.
 *
 * How: each function has exactly the signature declared in
 * <faiss/c_api/...>; the opaque handles are the C++ objects themselves
 * (FaissIndex* is a faiss::Index*). Every call catches C++ exceptions and
 * returns the error_c.h code (FAISS_EXCEPT -2, STD_EXCEPT -4,
 * UNKNOWN_EXCEPT -1) with the message kept in a thread-local string that
 * faiss_get_last_error() returns.
 *
 * What not: this is not a full C API. Only what index/vector/ calls is
 * here; when a real libfaiss_c is found the build links it and skips this
 * file, so callers must stay within the official API.
 */
#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <exception>
#include <string>

extern "C" {
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
}

namespace {

thread_local std::string last_error;

faiss::Index *ix(FaissIndex *p)
{
	return reinterpret_cast<faiss::Index *>(p);
}

const faiss::Index *ix(const FaissIndex *p)
{
	return reinterpret_cast<const faiss::Index *>(p);
}

const faiss::ParameterSpace *ps(const FaissParameterSpace *p)
{
	return reinterpret_cast<const faiss::ParameterSpace *>(p);
}

/* Run f; turn any exception into an error code and a stored message. */
template <typename F> int guarded(F f)
{
	try {
		f();
		return 0;
	} catch (const faiss::FaissException &e) {
		last_error = e.what();
		return FAISS_EXCEPT;
	} catch (const std::exception &e) {
		last_error = e.what();
		return STD_EXCEPT;
	} catch (...) {
		last_error = "unknown exception";
		return UNKNOWN_EXCEPT;
	}
}

} /* namespace */

extern "C" {

const char *faiss_get_last_error()
{
	return last_error.c_str();
}

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
			FaissMetricType metric)
{
	return guarded([&] {
		faiss::Index *i = faiss::index_factory(
			d, description, static_cast<faiss::MetricType>(metric));
		*p_index = reinterpret_cast<FaissIndex *>(i);
	});
}

void faiss_Index_free(FaissIndex *obj)
{
	delete ix(obj);
}

int faiss_Index_d(const FaissIndex *index)
{
	return ix(index)->d;
}

idx_t faiss_Index_ntotal(const FaissIndex *index)
{
	return ix(index)->ntotal;
}

int faiss_Index_is_trained(const FaissIndex *index)
{
	return ix(index)->is_trained;
}

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
	return guarded([&] { ix(index)->train(n, x); });
}

int faiss_Index_add(FaissIndex *index, idx_t n, const float *x)
{
	return guarded([&] { ix(index)->add(n, x); });
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x,
		       idx_t k, float *distances, idx_t *labels)
{
	return guarded([&] { ix(index)->search(n, x, k, distances, labels); });
}

int faiss_Index_reconstruct(const FaissIndex *index, idx_t key, float *recons)
{
	return guarded([&] { ix(index)->reconstruct(key, recons); });
}

int faiss_ParameterSpace_new(FaissParameterSpace **space)
{
	return guarded([&] {
		*space = reinterpret_cast<FaissParameterSpace *>(
			new faiss::ParameterSpace());
	});
}

void faiss_ParameterSpace_free(FaissParameterSpace *obj)
{
	delete reinterpret_cast<faiss::ParameterSpace *>(obj);
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space,
					     FaissIndex *index,
					     const char *name, double value)
{
	return guarded([&] {
		ps(space)->set_index_parameter(ix(index), name, value);
	});
}

int faiss_write_index(const FaissIndex *idx, FILE *f)
{
	return guarded([&] { faiss::write_index(ix(idx), f); });
}

int faiss_read_index(FILE *f, int io_flags, FaissIndex **p_out)
{
	return guarded([&] {
		faiss::Index *i = faiss::read_index(f, io_flags);
		*p_out = reinterpret_cast<FaissIndex *>(i);
	});
}

int faiss_write_index_fname(const FaissIndex *idx, const char *fname)
{
	return guarded([&] { faiss::write_index(ix(idx), fname); });
}

int faiss_read_index_fname(const char *fname, int io_flags, FaissIndex **p_out)
{
	return guarded([&] {
		faiss::Index *i = faiss::read_index(fname, io_flags);
		*p_out = reinterpret_cast<FaissIndex *>(i);
	});
}

} /* extern "C" */

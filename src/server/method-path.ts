/**
 * The method a request calls, `/package.Service/Method`, from its URL: without the query
 * string, which Connect's routing ignores too, so that what a method's limits are looked up by
 * is what it is served by.
 */
export function methodPath(url: string | undefined): string {
  const path = url ?? "";
  const query = path.indexOf("?");
  return query < 0 ? path : path.slice(0, query);
}
